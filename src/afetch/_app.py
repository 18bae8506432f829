"""The command-line run: input → scheduler → records → sinks, with signals and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from rich.console import Console

from afetch._input import InputError, count_urls, open_sources, read_urls
from afetch._output import JsonLinesSink, OutputClosed, open_output
from afetch._report import ProgressDisplay, summary_view
from afetch._scheduler import fetch
from afetch._settings import Settings
from afetch._signals import SIGNAL_EXITS, restore_exit_handlers
from afetch._stats import Stats

EXIT_OK = 0
EXIT_NOT_OK = 1
EXIT_USAGE = 2
EXIT_SIGPIPE = 141


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """What the command line adds around the core: where input comes from and what is shown."""

    sources: tuple[str, ...]
    output: str | None = None
    progress: bool = False
    quiet: bool = False


def error_line(message: str) -> None:
    print(f"afetch: error: {message}", file=sys.stderr)


async def _counted(urls: AsyncIterator[str], stats: Stats) -> AsyncIterator[str]:
    async for url in urls:
        stats.pulled += 1
        yield url


def _count_in_background(sources: Sequence[str], stats: Stats) -> None:
    """Fill in the total for the progress display without delaying the first request."""

    def count() -> None:
        with contextlib.suppress(OSError):
            stats.total = count_urls(sources)

    threading.Thread(target=count, name="afetch-count", daemon=True).start()


class _Interrupt:
    """Turns SIGINT/SIGTERM into a graceful stop; remembers which signal arrived first."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.signum: int | None = None

    def __enter__(self) -> _Interrupt:
        loop = asyncio.get_running_loop()
        for signum in SIGNAL_EXITS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNAL_EXITS:
            loop.remove_signal_handler(signum)
        # remove_signal_handler restores Python's default (a KeyboardInterrupt traceback for
        # SIGINT); under exit_on_signals a signal from here on ends the run at once.
        restore_exit_handlers()

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.stop.set()


async def run(
    settings: Settings,
    options: RunOptions,
    *,
    urls: Callable[[], AsyncIterator[str]] | None = None,
    total: int | None = None,
) -> int:
    """Run one fetch job from the command line; returns the exit code.

    ``urls`` replaces reading ``options.sources`` (the demo uses it), with ``total`` URLs if known.
    """
    try:
        fds = open_sources(options.sources) if urls is None else []
    except InputError as exc:
        error_line(str(exc))
        return EXIT_USAGE
    try:
        stream = open_output(options.output)
    except OSError as exc:
        error_line(f"cannot write {options.output}: {exc.strerror or exc}")
        return EXIT_USAGE
    console = Console(stderr=True)
    stats = Stats(total=total)
    if options.progress and urls is None:
        _count_in_background(options.sources, stats)
    sink = JsonLinesSink(stream)
    code: int | None = None
    source = read_urls(fds) if urls is None else urls()
    display = ProgressDisplay(stats, console) if options.progress else contextlib.nullcontext()
    with _Interrupt() as interrupt, display:
        try:
            async for record in fetch(
                _counted(source, stats), settings=settings, stop=interrupt.stop
            ):
                sink.write(record)
                stats.add(record)
        except OutputClosed:
            code = EXIT_SIGPIPE
        except InputError as exc:
            error_line(str(exc))
            code = EXIT_USAGE
    stats.finish()
    sink.close()
    if code == EXIT_SIGPIPE:
        return code  # the reader left: stay quiet, as `cmd | head` expects
    if not options.quiet:
        console.print(summary_view(stats))
    if interrupt.signum is not None:
        return SIGNAL_EXITS[signal.Signals(interrupt.signum)]
    if code is not None:
        return code
    return EXIT_OK if stats.ok == stats.done else EXIT_NOT_OK
