"""Reports replace their file atomically: written to a temporary file beside it, then renamed.

A reader (node_exporter's textfile collector, a CI step, ``jq``) sees the previous report or the
new one whole, never half of one (node_exporter#381 asks exactly this of cron jobs). The
temporary file is ``.NAME.RANDOM.tmp`` in the report's own folder (a rename does not cross file
systems), made at the start of the run, so a folder that cannot be written is a usage error
before any URL is fetched, not a lost report after the last one. Its mode is 0666 less the
umask, as a plain ``open`` gives: a metrics collector running as another user can read it.
"""

from __future__ import annotations

import contextlib
import os
from typing import BinaryIO


class TempFile:
    """A temporary file beside ``path`` that becomes ``path`` on :meth:`commit`."""

    def __init__(self, path: str) -> None:
        self.path = path
        folder, name = os.path.split(path)
        for _ in range(100):
            temp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover (100 random names taken)
            raise FileExistsError(f"no free temporary name beside {path}")
        self.temp = temp
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 16)

    def commit(self) -> None:
        """Flush, sync and rename over ``path``; the temporary file is gone either way."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)

    def write_all(self, data: bytes) -> None:
        """Write ``data`` as the whole file and commit it."""
        self.file.seek(0)
        self.file.truncate()
        self.file.write(data)
        self.commit()
