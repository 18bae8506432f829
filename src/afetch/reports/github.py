"""Under GitHub Actions (``GITHUB_ACTIONS=true``): the Markdown summary goes to the job summary
(``$GITHUB_STEP_SUMMARY``, appended to, as every step does) and the first URLs not ok become
``::error`` annotations on stderr, which the runner reads as it reads stdout.

GitHub shows at most 10 error annotations per step; afetch writes that many and one line saying
how many more there are, rather than flooding the log.
"""

from __future__ import annotations

from typing import IO

from afetch.reports.markdown import render
from afetch.reports.summary import Outcome

#: Error annotations written at most.
ANNOTATIONS = 10


def _data(text: str) -> str:
    """A workflow command's message, escaped as the runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(outcome: Outcome) -> list[str]:
    """``::error`` lines for the first URLs not ok (their URLs masked), and a closing note."""
    lines = []
    failures = outcome.summary["failures"]
    for row in failures[:ANNOTATIONS]:
        kind = row["error"] or f"http_{row['status']}"
        detail = row["message"] or f"HTTP status {row['status']}"
        title = _property(f"afetch: {kind}")
        lines.append(f"::error title={title}::{_data(row['url'])}: {_data(detail)}")
    more = outcome.summary["urls"]["not_ok"] - min(len(failures), ANNOTATIONS)
    if more > 0:
        lines.append(f"::error title=afetch::{more:,} more URLs not ok (see the job summary)")
    return lines


def report(outcome: Outcome, *, summary_path: str | None, stderr: IO[str] | None) -> None:
    """Append the job summary, then write the annotations (``stderr`` None: none, as under -q)."""
    if summary_path:
        with open(summary_path, "a", encoding="utf-8", errors="replace") as file:
            file.write(render(outcome.summary) + "\n")
    if stderr is not None:
        for line in annotations(outcome):
            print(line, file=stderr)
