"""Quiet exits on SIGINT/SIGTERM outside the fetch loop; light enough to load first.

Inside the loop, ``_app`` turns the same signals into a graceful stop. Before it starts (while
httpx and friends import) and after it ends (the summary), Python's default would print a
KeyboardInterrupt traceback; these handlers exit at once with the documented code instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from afetch._exits import EXIT_SIGINT, EXIT_SIGTERM

#: Exit codes for the signals afetch handles (128 + signal number, as shells report them).
SIGNAL_EXITS = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}

_exit_handlers_on = False


def exit_now(signum: int, frame: object) -> None:
    # os._exit, not SystemExit: a SystemExit raised while a finaliser happens to run (the garbage
    # collector is busy during start-up imports) is swallowed as "Exception ignored", and the
    # signal is lost. Nothing is pending when these handlers are on: no run has started yet, or
    # its records are already written and flushed.
    sys.stderr.flush()
    os._exit(SIGNAL_EXITS[signal.Signals(signum)])


def install_exit_handlers() -> None:
    for signum in SIGNAL_EXITS:
        signal.signal(signum, exit_now)


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Within this block, SIGINT/SIGTERM end the process at once with 130/143, quietly.

    Previous handlers come back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    global _exit_handlers_on
    previous = {signum: signal.signal(signum, exit_now) for signum in SIGNAL_EXITS}
    _exit_handlers_on = True
    try:
        yield
    finally:
        _exit_handlers_on = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def restore_exit_handlers() -> None:
    """After the loop's own handlers are removed, fall back to quiet exits if they were on."""
    if _exit_handlers_on:
        install_exit_handlers()
