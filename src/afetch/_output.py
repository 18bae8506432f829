"""Record sinks: where the JSON Lines go."""

from __future__ import annotations

import contextlib
import os
from typing import BinaryIO

from afetch._record import Record


class OutputClosed(Exception):
    """The reader of our output went away (``afetch ... | head``)."""


class JsonLinesSink:
    """Writes one record per line and hands every line to the OS at once.

    Whole lines only: each record is flushed as soon as it is written, and a signal only ends the
    run between two records, so stdout never ends in a partial line.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, record: Record) -> None:
        line = (record.to_json() + "\n").encode("utf-8")
        try:
            self._stream.write(line)
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._stream.close()


def open_output(path: str | None) -> BinaryIO:
    """stdout, or the named file (truncated), as a binary stream the sink owns."""
    if path is None or path == "-":
        return os.fdopen(os.dup(1), "wb")
    return open(path, "wb")
