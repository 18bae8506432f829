"""The reports of one run: opened before the first URL, fed as records are written, written
when the run ends (stopped by a signal too).

:meth:`Reports.add_many` runs on the writer thread of afetch.output.writer, right after the
run's :class:`~afetch._stats.Stats` counted the same records, so the reports count exactly the
records that reached the output and the event loop does no work for them. It never raises: a
report that cannot be written says so when the run ends.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from afetch._record import Record
from afetch._stats import Stats
from afetch._timestamps import now_iso
from afetch.reports import KINDS, ReportError
from afetch.reports.summary import Outcome, Tally, summarize


class Reports:
    def __init__(
        self, wanted: Sequence[tuple[str, str]], *, env: Mapping[str, str], quiet: bool
    ) -> None:
        """Open each ``(kind, path)`` report's temporary file; ReportError if one cannot be
        (the ones opened are discarded)."""
        self.tally = Tally()
        self.started_at = now_iso()
        self._opened: list[tuple[str, str, Any]] = []
        self._broken: Exception | None = None
        for kind, path in wanted:
            module = importlib.import_module(KINDS[kind].module)
            try:
                self._opened.append((kind, path, module.Report(path)))
            except OSError as exc:
                self.discard()
                raise ReportError(
                    f"cannot write --report {kind}={path}: {exc.strerror or exc}"
                ) from None
        self._streams = [report for _, _, report in self._opened if hasattr(report, "add_many")]
        self._github = env.get("GITHUB_ACTIONS") == "true"
        self._step_summary = env.get("GITHUB_STEP_SUMMARY") or None
        self._quiet = quiet

    def add_many(self, records: Iterable[Record]) -> None:
        """Count ``records`` (the writer thread): never raises, the records matter more."""
        if self._broken is not None:
            return
        batch = records if isinstance(records, list) else list(records)
        try:
            self.tally.add_many(batch)
            for report in self._streams:
                report.add_many(batch)
        except Exception as exc:
            self._broken = exc

    def finish(self, stats: Stats, *, exit_code: int, signal: str | None) -> list[str]:
        """Write every report; the problems, one line each (empty when all went well)."""
        if self._broken is not None:
            self.discard()
            error = self._broken
            return [f"cannot make the reports: {type(error).__name__}: {error}"]
        finished = time.time()
        summary = summarize(
            stats,
            self.tally,
            started_at=self.started_at,
            finished_at=now_iso(),
            exit_code=exit_code,
            signal=signal,
        )
        outcome = Outcome(summary, self.tally, finished)
        problems = []
        for kind, path, report in self._opened:
            try:
                report.write(outcome)
            except OSError as exc:
                problems.append(f"cannot write --report {kind}={path}: {exc.strerror or exc}")
        if self._github:
            from afetch.reports import github

            try:
                github.report(
                    outcome,
                    summary_path=self._step_summary,
                    stderr=None if self._quiet else sys.stderr,
                )
            except OSError as exc:
                problems.append(f"cannot write GITHUB_STEP_SUMMARY: {exc.strerror or exc}")
        return problems

    def discard(self) -> None:
        """Remove the temporary files (a run that never started)."""
        for _, _, report in self._opened:
            report.discard()
