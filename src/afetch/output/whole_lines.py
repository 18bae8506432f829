"""Lines written whole to a descriptor, so a reader never sees half a record.

On a pipe, in writes the kernel makes all at once or not at all (at most ``PIPE_BUF`` bytes,
or as much as an empty pipe holds; a longer line waits until the pipe is empty). On a regular
file, a write that fails part-way is taken back to the end of the last whole line. The writer
thread (afetch.output.writer) is its only user; ``written`` is told which records' lines went
out, and ``abandoned`` ends a wait that no longer matters.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import struct
import time
from collections.abc import Callable

from afetch._record import Record
from afetch.output.sinks import OutputClosed, OutputFailed

try:
    import fcntl
    import termios
except ImportError:  # Windows: pipe sizes cannot be asked; writes fall back to PIPE_BUF
    fcntl = termios = None  # type: ignore[assignment]

#: Writes to a pipe of at most this many bytes are atomic (POSIX guarantees 512; Linux 4096).
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
_EMPTY_POLL_S = 0.01


class Abandoned(Exception):
    """The run gave up on the writer: stop without journaling or counting anything more."""


class WholeLines:
    """Writes lines to ``fd``, whole lines only (see the module's docstring)."""

    def __init__(
        self,
        fd: int,
        *,
        written: Callable[[list[Record]], None],
        abandoned: Callable[[], bool],
    ) -> None:
        self._fd = fd
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            mode = 0
        self._pipe = stat.S_ISFIFO(mode)
        self._regular = stat.S_ISREG(mode)
        self._capacity: int | None = None  # of the pipe, in bytes
        self._written = written
        self._abandoned = abandoned

    def write(self, lines: list[bytes], records: list[Record]) -> None:
        """Write the lines of ``records``, whole lines only."""
        if not self._pipe:
            self.write_whole(lines, records)
            return
        # A pipe: whole lines, in writes the pipe takes at once (so never half a line).
        start = 0
        while start < len(lines):
            room = self._pipe_room()
            end, size = start, 0
            while end < len(lines) and size + len(lines[end]) <= room:
                size += len(lines[end])
                end += 1
            if end == start:  # one line longer than PIPE_BUF: wait until the pipe is empty
                self._wait_for_room(len(lines[start]))
                end = start + 1
            self._write(b"".join(lines[start:end]))
            self._written(records[start:end])
            start = end

    def _pipe_room(self) -> int:
        """Bytes one write to the pipe is sure to make at once.

        An empty pipe takes its whole capacity without blocking: one write per batch while the
        reader keeps up, which saves the thread a switch per ``PIPE_BUF`` bytes. Otherwise
        ``PIPE_BUF``: how the kernel packs what is unread decides the room left, and a write of
        at most ``PIPE_BUF`` bytes is atomic anyway. (Another process writing to the same pipe,
        as with ``2>&1``, could fill it in between; afetch writes to stderr only at the end.)
        """
        try:
            if self._capacity is None:
                self._capacity = fcntl.fcntl(self._fd, fcntl.F_GETPIPE_SZ)
            return self._capacity if _unread(self._fd) == 0 else PIPE_BUF
        except (AttributeError, OSError):  # not Linux: only PIPE_BUF is certain
            return PIPE_BUF

    def write_whole(self, lines: list[bytes], records: list[Record]) -> None:
        """Write ``lines`` (the first ones those of ``records``) to a file, whole lines only.

        On a regular file a failed write (disk full, quota) is undone back to the end of the
        last line written whole; the records of those lines are kept, journaled and counted.
        """
        data = b"".join(lines)
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            whole, kept = 0, 0
            while whole < len(lines) and kept + len(lines[whole]) <= done:
                kept += len(lines[whole])
                whole += 1
            if done > kept:
                self._trim(done - kept)
            if whole and records:
                self._written(records[: min(whole, len(records))])
            raise failure(exc) from None
        if records:
            self._written(records)

    def _trim(self, size: int) -> None:
        """Take back the last ``size`` bytes written: the start of a line cut short."""
        if not self._regular:
            return  # a device or socket: what went out cannot be taken back
        with contextlib.suppress(OSError):
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
            os.ftruncate(self._fd, end - size)
            os.lseek(self._fd, end - size, os.SEEK_SET)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise failure(exc) from None

    def _wait_for_room(self, size: int) -> None:
        """Before a line too long to be atomic: wait until the pipe is empty and can hold it.

        Best effort (Linux); where the pipe cannot be asked, the line is simply written.
        """
        try:
            if size > fcntl.fcntl(self._fd, fcntl.F_GETPIPE_SZ):
                fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, size)
                self._capacity = None
        except (AttributeError, OSError):
            return  # not Linux, or larger than the system allows
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while _unread(self._fd):
            if self._abandoned():
                raise Abandoned
            if any(event & select.POLLERR for _, event in poller.poll(0)):
                return  # the reader is gone: the write reports it
            time.sleep(_EMPTY_POLL_S)


def failure(exc: OSError) -> OutputClosed | OutputFailed:
    if isinstance(exc, BrokenPipeError):
        return OutputClosed()
    return OutputFailed(exc.strerror or str(exc))


def _unread(fd: int) -> int:
    if fcntl is None:
        raise AttributeError("fcntl")  # handled by the callers as "not Linux"
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
