"""Exit codes and the one-line error report: light enough for ``--version`` and usage errors.

The codes are part of the documented interface (README.md, "Exit codes"); never renumber them.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
#: At least one URL is not ok.
EXIT_NOT_OK = 1
#: Usage error: a bad option or value, an unreadable input, a path naming an input or another
#: output (``afetch.run.paths``), a ``--state`` journal locked by another run.
EXIT_USAGE = 2
#: sysexits' EX_IOERR: records could not be written.
EXIT_OUTPUT = 74
#: 128 + the signal number, as shells report them.
EXIT_SIGHUP = 129
EXIT_SIGINT = 130
EXIT_SIGPIPE = 141
EXIT_SIGTERM = 143


def error_line(message: str) -> None:
    """Report ``message`` as the one ``afetch: error: ...`` line on stderr."""
    print(f"afetch: error: {message}", file=sys.stderr)
