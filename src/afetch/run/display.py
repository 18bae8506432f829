"""What a run shows on stderr while it fetches: the live table on a terminal, plain progress
lines elsewhere, and the live table's hold for records written to its own screen."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from afetch._settings import Settings
from afetch._stats import Stats
from afetch.input.reader import url_counter
from afetch.output.plain import PlainProgress
from afetch.run.options import RunOptions
from afetch.schedule.gauge import Gauge

if TYPE_CHECKING:
    from rich.console import Console


def on_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def count_in_background(fds: Sequence[int], stats: Stats) -> None:
    """Fill in the total for the progress display without delaying the first request; only
    regular files are counted (reading a pipe would take its lines from the run)."""
    try:
        counter = url_counter(fds)  # before the reader thread starts: it notes the offsets
    except OSError:
        return
    if counter is None:
        return

    def count() -> None:
        with contextlib.suppress(OSError):
            stats.total = counter()

    threading.Thread(target=count, name="afetch-count", daemon=True).start()


def terminal_console() -> Console | None:
    """Rich, for a terminal only: logs, pipes and cron mail get plain text, and a run whose
    stderr is not a terminal does not even import Rich (tens of ms of start-up). GitHub
    Actions' log is no terminal either, whatever a pty wrapper says: no live table there."""
    if sys.stderr is None or not sys.stderr.isatty() or on_github_actions():
        return None
    from rich.console import Console

    return Console(stderr=True)


def progress_display(
    stats: Stats,
    gauge: Gauge | None,
    console: Console | None,
    *,
    settings: Settings,
    options: RunOptions,
) -> contextlib.AbstractContextManager[object]:
    if gauge is None:
        return contextlib.nullcontext()
    if console is None:
        return PlainProgress(stats, gauge, interval=options.progress_interval, file=sys.stderr)
    from afetch.output.terminal import progress_display

    return progress_display(
        stats, gauge, console, concurrency=settings.concurrency, interval=options.progress_interval
    )


def shared_terminal(
    display: object, stream: BinaryIO
) -> Callable[[], contextlib.AbstractContextManager[None]] | None:
    """The live table's hold for writing records above it, when they go to its terminal.

    ``afetch urls.txt`` on a terminal: records and the table share one screen, and a redraw
    would erase or cut the records written since the last frame. Anywhere else (a file, a
    pipe, another terminal) records are written as they are, at no cost.
    """
    above = getattr(display, "above", None)
    if above is None:
        return None
    try:
        out, err = os.fstat(stream.fileno()), os.fstat(2)
    except (OSError, ValueError):
        return None
    same = stat.S_ISCHR(out.st_mode) and stat.S_ISCHR(err.st_mode) and out.st_rdev == err.st_rdev
    return above if same else None
