"""The end of a run: the summary and its notes on stderr, the exit code, the reports."""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from afetch._stats import Stats
from afetch.input.reader import InputError, count_urls
from afetch.output.plain import interrupted_note, summary_text
from afetch.run.exits import EXIT_NOT_OK, EXIT_OK, EXIT_OUTPUT, error_line
from afetch.run.options import RunOptions
from afetch.run.signals import note_signal
from afetch.schedule.hosts import BusiestHosts

if TYPE_CHECKING:
    from rich.console import Console

    from afetch.reports.collect import Reports


def print_summary(
    stats: Stats,
    busiest: BusiestHosts | None,
    console: Console | None,
    *,
    notes: list[tuple[str, str]],
) -> None:
    rows = None if busiest is None else busiest.rows
    if console is None:
        print(summary_text(stats, busiest=rows, notes=notes), file=sys.stderr)
        return
    from afetch.output.terminal import summary_view

    console.print(summary_view(stats, busiest=rows, notes=notes))


def interrupted(
    stats: Stats, options: RunOptions, *, whole_input: bool, demo: bool
) -> tuple[str, str]:
    """The summary's note for a stopped run. The total is the one the progress display counted,
    or counted now for files read whole (not stdin, a shard or a resumed run: no total beats a
    wrong one). The demo's URLs are made up: nothing to resume."""
    total = stats.total
    if total is None and whole_input and "-" not in options.sources:
        with contextlib.suppress(OSError, InputError):
            total = count_urls(options.sources)
    return interrupted_note(stats, total=total, state=options.state, hint=not demo)


def exit_code(code: int | None, signum: int | None, stats: Stats, failed: bool | None) -> int:
    """The first signal decides; then a code the run ended with (a closed or failed output);
    then the exit policy (--fail-on, --fail-after: afetch.watch.policy); else whether every URL,
    those a resumed run did before included, is ok."""
    if signum is not None:
        return note_signal(signum)
    if code is not None:
        return code
    if failed is not None:
        return EXIT_NOT_OK if failed else EXIT_OK
    all_ok = stats.ok == stats.done and stats.earlier_ok == stats.earlier
    return EXIT_OK if all_ok else EXIT_NOT_OK


def write_reports(reports: Reports, stats: Stats, code: int, signum: int | None) -> int:
    """Write the reports; the exit code, 74 when one could not be (unless a signal decided)."""
    name = None if signum is None else signal.Signals(signum).name
    problems = reports.finish(stats, exit_code=code, signal=name)
    for problem in problems:
        error_line(problem)
    return EXIT_OUTPUT if problems and code in (EXIT_OK, EXIT_NOT_OK) else code
