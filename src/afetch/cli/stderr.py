"""stderr that can never change a run's outcome: closed (``2>&-``), full (``2>/dev/full``) or a
pipe whose reader left, what afetch writes there (progress, warnings, the summary) is lost
quietly, and the records, the journal and the exit code are what they would have been.
"""

from __future__ import annotations

import contextlib
import os
import sys

# Not typing's: the entry point loads this before anything else (see afetch/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


class QuietStderr:
    """Wraps ``sys.stderr``: its writes and flushes never raise (the rest is passed through,
    so Rich and ``print`` see the stream they expect)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            self.failed = True  # gone or full: progress and summary are not worth an error
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self.failed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stderr() -> None:
    """Make fd 2 safe to use and ``sys.stderr`` safe to write, for the whole process.

    A closed fd 2 gets ``/dev/null``: Python leaves ``sys.stderr`` as ``None`` then (and
    ``sys.stderr.isatty()`` failed before anything was fetched), and a file opened later (``-o``,
    the journal) would take number 2, where whatever writes to "stderr" would write into it.
    """
    try:
        os.fstat(2)
    except OSError:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            if null != 2:
                os.dup2(null, 2)
                os.close(null)
    stream = sys.stderr
    if stream is None:  # fd 2 was closed at start-up (or there is no console)
        with contextlib.suppress(OSError, ValueError):
            stream = open(2, "w", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
    if stream is not None and not isinstance(stream, QuietStderr):
        sys.stderr = QuietStderr(stream)  # type: ignore[assignment]
