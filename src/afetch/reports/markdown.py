"""``--report md=PATH``: the run summed up in Markdown, for people (and GitHub's job summary).

A heading that says how it went, a table of counts, then the URLs not ok (the first 50) and the
slowest. URLs are shown in code spans with their passwords masked, and nothing a URL or a
message holds can break the table: ``|`` is escaped and control characters are dropped.
"""

from __future__ import annotations

import re
from typing import Any

from afetch._stats import CLASSES
from afetch.reports.atomic import TempFile
from afetch.reports.summary import FAILURES, Outcome

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def code(text: str) -> str:
    """``text`` as a code span inside a table cell.

    >>> code("a|b"), code("x`y")
    ('`a\\\\|b`', '``x`y``')
    """
    text = _CONTROL.sub(" ", text).replace("|", "\\|")
    ticks = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return _CONTROL.sub(" ", text).replace("|", "\\|")


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _pairs(counts: dict[str, int]) -> str:
    return " · ".join(f"{name} {n:,}" for name, n in counts.items())


def render(summary: dict[str, Any]) -> str:
    urls = summary["urls"]
    done, not_ok = urls["done"], urls["not_ok"]
    verdict = "all ok" if not not_ok else f"{not_ok:,} not ok"
    lines = [f"## afetch: {done:,} URLs, {verdict}", ""]
    if summary["signal"] is not None:
        lines += [f"Stopped by {summary['signal']}: the URLs after these were not fetched.", ""]
    lines += ["| | URLs |", "|---|---:|", f"| ok | {urls['ok']:,} |", f"| not ok | {not_ok:,} |"]
    lines += [f"| {name} | {summary['classes'][name]:,} |" for name in CLASSES]
    if urls["earlier"]:
        lines.append(f"| earlier (resumed) | {urls['earlier']:,}, {urls['earlier_ok']:,} ok |")
    lines.append("")
    if summary["errors"]:
        lines += [f"**Errors:** {_pairs(summary['errors'])}", ""]
    if summary["changes"]:
        lines += [f"**Changes:** {_pairs(summary['changes'])}", ""]
    latency = summary["latency_ms"]
    lines += [
        "**Latency:** " + " · ".join(f"{k} {_ms(v)}" for k, v in latency.items()),
        "",
        f"**Run:** {summary['duration_s']:,.1f} s, {summary['rate_per_s']:,.1f} URLs/s, "
        f"{summary['bytes']:,} bytes, exit code {summary['exit_code']}",
        "",
    ]
    failures = summary["failures"]
    if failures:
        shown = f"the first {len(failures)} of {not_ok:,}" if not_ok > len(failures) else "all"
        lines += [f"### Not ok ({shown})", "", "| URL | status | error | change |"]
        lines.append("|---|---|---|---|")
        for row in failures[:FAILURES]:
            error = row["error"] or ""
            if row["message"]:
                error = f"{error}: {row['message']}"
            lines.append(
                f"| {code(row['url'])} | {row['status'] or ''} | {_cell(error)} "
                f"| {row['change'] or ''} |"
            )
        lines.append("")
    if summary["slowest"]:
        lines += ["### Slowest", "", "| URL | time | status |", "|---|---:|---|"]
        for row in summary["slowest"]:
            status = row["status"] if row["status"] is not None else row["error"]
            lines.append(f"| {code(row['url'])} | {_ms(row['elapsed_ms'])} | {status} |")
        lines.append("")
    return "\n".join(lines)


class Report:
    def __init__(self, path: str) -> None:
        self._temp = TempFile(path)

    def write(self, outcome: Outcome) -> None:
        self._temp.write_all(render(outcome.summary).encode("utf-8", "replace"))

    def discard(self) -> None:
        self._temp.discard()
