"""Interrupt: SIGINT/SIGTERM/SIGHUP turned into a graceful stop while the fetch loop runs."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from afetch.run.signals import SIGNAL_EXITS, note_signal, restore_exit_handlers


class Interrupt:
    """Turns SIGINT/SIGTERM/SIGHUP into a graceful stop; remembers which signal came first."""

    def __init__(self, *, on_signal: Callable[[], None] | None = None) -> None:
        self.stop = asyncio.Event()
        self.signum: int | None = None
        self._on_signal_too = on_signal

    def __enter__(self) -> Interrupt:
        loop = asyncio.get_running_loop()
        self._previous: dict[int, object] = {}
        for signum in SIGNAL_EXITS:
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except NotImplementedError:  # Windows' loops: a plain handler that wakes the loop
                self._previous[signum] = signal.signal(
                    signum, lambda s, _: loop.call_soon_threadsafe(self._on_signal, s)
                )
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNAL_EXITS:
            if signum in self._previous:
                signal.signal(signum, self._previous[signum])  # type: ignore[arg-type]
            else:
                loop.remove_signal_handler(signum)
        # remove_signal_handler restores Python's default (a KeyboardInterrupt traceback for
        # SIGINT); under exit_on_signals a signal from here on ends the run at once.
        restore_exit_handlers()

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        note_signal(signum)  # a later signal after this block ends exits with this one's code
        self.stop.set()
        if self._on_signal_too is not None:
            self._on_signal_too()
