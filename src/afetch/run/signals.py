"""Quiet exits on SIGINT/SIGTERM/SIGHUP outside the fetch loop; light enough to load first.

Inside the loop, ``afetch.run.interrupt`` turns the same signals into a graceful stop. Before it
starts (while httpx and friends import) and after it ends (the summary), Python's default would
print a KeyboardInterrupt traceback (SIGINT) or end the process without a word (SIGHUP); these
handlers exit at once with the documented code instead.

The first signal decides the exit code, whichever comes next and whenever: Ctrl-C then a
SIGTERM (or a hang-up) exits 130, however the second one falls between the graceful stop and
the exit-now handlers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from afetch.run.exits import EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM

#: Exit codes for the signals afetch handles (128 + signal number, as shells report them).
#: SIGHUP (the terminal closed, or a supervisor's stop) is a stop like SIGTERM; Windows has none.
SIGNAL_EXITS = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}
if hasattr(signal, "SIGHUP"):
    SIGNAL_EXITS[signal.SIGHUP] = EXIT_SIGHUP

_exit_handlers_on = False
_first_signal: int | None = None


def note_signal(signum: int) -> int:
    """Remember ``signum`` if it is the process's first signal; the first one's exit code."""
    global _first_signal
    if _first_signal is None:
        _first_signal = signum
    return SIGNAL_EXITS[signal.Signals(_first_signal)]


def exit_now(signum: int, frame: object) -> None:
    # os._exit, not SystemExit: a SystemExit raised while a finaliser happens to run (the garbage
    # collector is busy during start-up imports) is swallowed as "Exception ignored", and the
    # signal is lost. Nothing is pending when these handlers are on: no run has started yet, or
    # its records are already written and flushed.
    code = note_signal(signum)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def ignore_signals_at_exit() -> None:
    """The last exit handler (registered first): from here on the signals are ignored.

    Finalisation would otherwise put back the default actions, and a signal in its last
    milliseconds would kill the process (exit -15 for a SIGTERM after a Ctrl-C that decided 130).
    The run is over: its exit code stands.
    """
    for signum in SIGNAL_EXITS:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_IGN)


def install_exit_handlers() -> None:
    for signum in SIGNAL_EXITS:
        signal.signal(signum, exit_now)


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Within this block, SIGINT/SIGTERM/SIGHUP end the process at once with 130/143/129,
    quietly.

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
