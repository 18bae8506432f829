"""The process entry point, kept free of heavy imports so signals are handled from the start."""

from __future__ import annotations

import atexit
import gc
import os
import sys

from afetch.cli.names import COMPLETE_VAR, VERSION_LINE
from afetch.cli.stderr import guard_stderr

# Not typing's: --version answers without loading it (tests/test_startup.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def main() -> int:
    """``afetch`` and ``python -m afetch``: install quiet signal exits, then run the CLI."""
    # A closed, full or abandoned stderr loses messages, never records or the exit code.
    guard_stderr()
    if sys.argv[1:] == ["--version"] and not os.environ.get(COMPLETE_VAR):
        # The answer Typer would give, without loading it and every option (~100 ms): --version
        # is eager, so no other option or AFETCH_* variable could change it. It loads nothing
        # that a signal could interrupt, so it needs no handlers (signal's enums: 40% of it).
        print(VERSION_LINE)
        return 0
    from afetch.run.signals import ignore_signals_at_exit, install_exit_handlers

    # Before the CLI has loaded, a signal exits quietly with the documented code (130 SIGINT,
    # 143 SIGTERM) instead of a KeyboardInterrupt traceback. cli.main takes over from here.
    install_exit_handlers()
    atexit.register(ignore_signals_at_exit)  # first registered, so the last to run
    # Start-up makes tens of thousands of objects that live until exit, and next to no
    # garbage: the collector would walk them some 50 times for nothing (~10% of a short run's
    # start-up). cli.command turns it back on, tuned, before a run fetches anything.
    gc.disable()
    try:
        from afetch.cli.command import main as cli_main

        return cli_main()
    finally:
        gc.enable()  # whether or not a run turned it on (--help, a usage error)


def run() -> NoReturn:
    """The process (``afetch``, ``python -m afetch``): :func:`main`, then the exit."""
    exit_without_teardown(main())


def exit_without_teardown(code: int) -> NoReturn:
    """Exit with ``code`` as the interpreter would, without taking every module and object
    apart first (~2.5% of a one-URL run's instructions): a finished run has written its records
    with os.write and closed its files, and the kernel frees the rest.

    What an exit does that matters is done here: the exit handlers run (atexit: the cache's last
    writes, :func:`ignore_signals_at_exit`) and Python's buffered stdout and stderr are flushed.
    While a thread that is not a daemon still runs, a profiler or tracer is on, or stdout cannot
    be flushed (Python reports that and exits 120), the interpreter's own exit does it all, as
    before.
    """
    threading = sys.modules.get("threading")  # not loaded (--version): no other thread
    # A profiler or tracer (python -m cProfile, coverage) writes its results after this returns.
    watched = sys.getprofile() is not None or sys.gettrace() is not None
    if not watched and (
        threading is None
        or all(
            thread.daemon or thread is threading.main_thread() for thread in threading.enumerate()
        )
    ):
        atexit._run_exitfuncs()  # and forgets them: the normal exit below would not run them twice
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except (OSError, ValueError):
            pass  # the normal exit tries again, says why it failed and exits 120
        else:
            if sys.stderr is not None:
                sys.stderr.flush()  # afetch's QuietStderr (guard_stderr): never raises
            os._exit(code)
    raise SystemExit(code)
