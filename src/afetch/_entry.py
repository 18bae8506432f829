"""The process entry point, kept free of heavy imports so signals are handled from the start."""

from __future__ import annotations

import signal
import sys


def _early_exit(signum: int, frame: object) -> None:
    # Before the CLI has loaded: exit quietly with the documented code (130 SIGINT, 143
    # SIGTERM) instead of a KeyboardInterrupt traceback. cli.main takes over from here.
    sys.exit(128 + signum)


def main() -> int:
    """``afetch`` and ``python -m afetch``: install quiet signal exits, then run the CLI."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _early_exit)
    from afetch.cli import main as cli_main

    return cli_main()
