"""The process entry point, kept free of heavy imports so signals are handled from the start."""

from __future__ import annotations

import atexit

from afetch.cli.stderr import guard_stderr
from afetch.run.signals import ignore_signals_at_exit, install_exit_handlers


def main() -> int:
    """``afetch`` and ``python -m afetch``: install quiet signal exits, then run the CLI."""
    # Before the CLI has loaded, a signal exits quietly with the documented code (130 SIGINT,
    # 143 SIGTERM) instead of a KeyboardInterrupt traceback. cli.main takes over from here.
    install_exit_handlers()
    atexit.register(ignore_signals_at_exit)  # first registered, so the last to run
    # A closed, full or abandoned stderr loses messages, never records or the exit code.
    guard_stderr()
    from afetch.cli.command import main as cli_main

    return cli_main()
