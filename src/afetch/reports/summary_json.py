"""``--report json=PATH``: the run's summary as one JSON object (docs/summary.schema.json).

For scripts that would otherwise scrape the Markdown or the stderr summary (and count wrong):
counts by class, status, error type and change, latency percentiles, the slowest URLs, the hosts
with the most URLs not ok and the first of those URLs. New keys may be added; none is renamed.
"""

from __future__ import annotations

import json

from afetch.reports.atomic import TempFile
from afetch.reports.summary import Outcome


class Report:
    def __init__(self, path: str) -> None:
        self._temp = TempFile(path)

    def write(self, outcome: Outcome) -> None:
        text = json.dumps(outcome.summary, ensure_ascii=False, indent=2) + "\n"
        self._temp.write_all(text.encode("utf-8", "replace"))

    def discard(self) -> None:
        self._temp.discard()
