"""Records go out from a writer thread, so a slow reader never blocks the event loop.

The loop hands each record over through a bounded hand-off (:meth:`RecordWriter.offer`, and
:meth:`RecordWriter.put` to wait for room). The writer thread takes whatever has queued up,
serialises it, writes it with as few ``write`` calls as it can, and only then appends the URLs
to the ``--state`` journal and counts them in the statistics (and, with ``--report``, in the
reports' tallies). So:

* **Backpressure, not blocking.** When the reader drains slowly, the hand-off fills and the loop
  awaits room; the record it holds keeps its scheduler slot, so fetching slows to the reader's
  pace. Signals are still handled at once: the loop itself never waits in ``write``.
* **Whole lines on a pipe.** On a pipe, lines go out in writes of whole lines that the kernel
  makes all at once or not at all: at most ``PIPE_BUF`` bytes (atomic by POSIX), or as much as
  the pipe holds when it is empty. A write stuck behind a stalled reader has therefore written
  nothing, and the process can exit in the middle of it without leaving a partial line. A line
  longer than ``PIPE_BUF`` (a very long URL) waits until the pipe is empty (grown to fit if
  needed), so it too goes out in one piece.
* **Whole lines on a file.** A write to a regular file that fails part-way (disk full, quota,
  a file size limit) is taken back to the end of the last whole line (``ftruncate``): the
  records of the lines written whole are kept and journaled, the run exits 74.
* **Journal after output.** A URL is journaled only after its record was written; the records
  of a run stopped while the writer is stuck are neither written nor journaled, and
  ``--resume`` fetches them again.
* **Abandon, never hang.** :meth:`RecordWriter.abandon` (after a signal, when the writer has
  not finished in time) makes the thread journal and count nothing more. The thread is a daemon
  blocked in ``write``; the process exits around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import stat
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from afetch._clock import Clock
from afetch.input.journal import Journal

try:
    import fcntl
    import termios
except ImportError:  # Windows: pipe sizes cannot be asked; writes fall back to PIPE_BUF
    fcntl = termios = None  # type: ignore[assignment]
from afetch._record import Record
from afetch._stats import Stats
from afetch.output.sinks import OutputClosed, OutputFailed, Sink

#: Records handed over but not yet written, at most. About two pipe buffers of typical records:
#: enough for the writer to batch, small enough that a stopped run drops little.
HANDOFF_RECORDS = 256
#: Writes to a pipe of at most this many bytes are atomic (POSIX guarantees 512; Linux 4096).
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
_EMPTY_POLL_S = 0.01
#: How long the idle writer waits for more records before it asks to be woken: bounds the
#: delay a record can spend in the hand-off (a lone record goes out at once), and saves thread
#: switches: one per batch, not per record (a shorter linger costs more CPU: docs/performance.md,
#: History).
LINGER_S = 0.02


class Counts(Protocol):
    """What else counts the records written (``--report``'s tallies); never raises."""

    def add_many(self, records: list[Record]) -> None: ...


class _Abandoned(Exception):
    """The run gave up on the writer: stop without journaling or counting anything more."""


class RecordWriter:
    """The writer thread and its bounded hand-off; create it on the event loop.

    ``stream`` is written with ``os.write`` on its descriptor (never through its buffer), ``sink``
    turns records into lines. Failures surface on the loop: ``offer``/``put`` raise the
    :class:`OutputClosed` or :class:`OutputFailed` the writer met, and :meth:`check` does after
    :meth:`close`.
    """

    def __init__(
        self,
        stream: BinaryIO,
        sink: Sink,
        *,
        stats: Stats,
        journal: Journal | None = None,
        limit: int = HANDOFF_RECORDS,
        terminal: Callable[[], AbstractContextManager[None]] | None = None,
        clock: Clock | None = None,
        reports: Counts | None = None,
        judge: Callable[[list[Record]], list[Record]] | None = None,
    ) -> None:
        self._stream = stream  # kept referenced: the thread writes to its descriptor
        self._fd = stream.fileno()
        try:
            mode = os.fstat(self._fd).st_mode
        except OSError:
            mode = 0
        self._pipe = stat.S_ISFIFO(mode)
        self._regular = stat.S_ISREG(mode)
        self._sink = sink
        # Decides each record's ok (and --history keys) before it is written (afetch.watch).
        self._judge = judge
        # Held around each batch's writes when the output is the terminal a live table is drawn
        # on (see ProgressDisplay.above); elsewhere a no-op.
        self._terminal = terminal or contextlib.nullcontext
        self._capacity: int | None = None  # of the pipe, in bytes
        self._stats = stats
        self._reports = reports
        self._journal = journal
        self._limit = limit
        self._wake_at = max(1, limit // 2)
        self._loop = asyncio.get_running_loop()
        # The grace after a signal runs on this clock (tests fake it); the linger is the
        # thread's own wait on its condition, real time by nature.
        self._clock: Clock = self._loop if clock is None else clock
        # Guards the hand-off: the queue, the count of records not yet written, the flags.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[Record] = deque()
        self._unwritten = 0
        self._idle = False
        self._closing = False
        self._interrupted = False
        self._interrupted_at: float | None = None
        self._failure: OutputClosed | OutputFailed | None = None
        self._room: asyncio.Future[None] | None = None
        # Held while the thread journals and counts, so that abandon() ends that for good.
        self._commit = threading.Lock()
        self._abandoned = False
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._main, name="afetch-writer", daemon=True)
        self._thread.start()

    # -- the loop's side -----------------------------------------------------------------------

    def offer(self, record: Record) -> bool:
        """Hand ``record`` over if there is room; never blocks (a lock held for microseconds)."""
        return self.offer_many([record]) == 1

    def offer_many(self, records: list[Record]) -> int:
        """:meth:`offer` for several records under one lock: how many, from the first, were
        handed over (the rest wait for :meth:`put`)."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            room = self._limit - self._unwritten
            if room <= 0:
                return 0
            taken = records if len(records) <= room else records[:room]
            before = self._unwritten
            self._queue.extend(taken)
            self._unwritten = after = before + len(taken)
            # Half full: wake a lingering writer too, or a fast run would fill the hand-off and
            # wait out the linger (at most HANDOFF_RECORDS per LINGER_S, ~13k records/s).
            if self._idle or before < self._wake_at <= after:
                self._wake.notify()
        return len(taken)

    async def put(self, record: Record) -> bool:
        """Hand ``record`` over, waiting for room; False if :meth:`interrupt` came first."""
        while not self.offer(record):
            room: asyncio.Future[None] = self._loop.create_future()
            with self._lock:
                if self._interrupted:
                    return False
                if self._unwritten < self._limit or self._failure is not None:
                    continue
                self._room = room
            await room
        return True

    def interrupt(self) -> None:
        """A signal arrived: stop waiting for room (records without room are dropped)."""
        with self._lock:
            self._interrupted = True
            if self._interrupted_at is None:
                self._interrupted_at = self._clock.time()
        self._wake_room()

    async def close(self, *, stop: asyncio.Event, grace: float) -> bool:
        """Let the thread write what was handed over; True when it did.

        Waits as long as the output takes, unless ``stop`` is (or gets) set: then until
        ``grace`` seconds after :meth:`interrupt` (or after ``stop``, if that came without it),
        after which the writer is abandoned (False).
        """
        with self._lock:
            self._closing = True
            self._wake.notify()
        finished = self._finished
        if not finished.done() and not stop.is_set():
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((finished, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
        if not finished.done():
            since = self._interrupted_at
            left = grace if since is None else since + grace - self._clock.time()
            expired: asyncio.Future[None] = self._loop.create_future()
            timer = self._clock.call_later(max(left, 0.0), _resolve, expired)
            try:
                await asyncio.wait((finished, expired), return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
        if finished.done():
            return True
        self.abandon()
        return False

    def abandon(self) -> None:
        """Journal and count nothing more, whatever the thread is doing."""
        with self._commit:
            self._abandoned = True

    def check(self) -> None:
        """Raise the failure the writer met, if any."""
        with self._lock:
            if self._failure is not None:
                raise self._failure

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def _wake_room(self) -> None:
        """Wake a ``put`` waiting for room (from any thread)."""
        with self._lock:
            room, self._room = self._room, None
        if room is not None:
            self._call_on_loop(_resolve, room)

    def _call_on_loop(self, callback: object, *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]

    # -- the thread ----------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._queue and not self._closing:
                        # Records that come within LINGER_S are picked up without the loop
                        # waking this thread: one wake-up per batch, not per record.
                        self._wake.wait(LINGER_S)
                    while not self._queue and not self._closing:
                        self._idle = True  # from now on offer() wakes us
                        self._wake.wait()
                        self._idle = False
                    batch = list(self._queue)
                    self._queue.clear()
                if batch:
                    if self._judge is not None:
                        batch = self._judge(batch)
                    with self._terminal():
                        self._write_batch(batch)
                    continue
                tail = self._sink.finish()  # a CSV header, for a run without records
                if tail:
                    self._write_whole([tail], [])
                return
        except _Abandoned:
            return
        except (OutputClosed, OutputFailed) as exc:
            with self._lock:
                self._failure = exc
        except Exception as exc:  # never die silently: the run reports it and exits 74
            with self._lock:
                self._failure = OutputFailed(f"{type(exc).__name__}: {exc}")
        finally:
            self._wake_room()
            self._call_on_loop(_resolve, self._finished)

    def _write_batch(self, batch: list[Record]) -> None:
        encode = self._sink.encode
        if not self._pipe:
            self._write_whole([encode(record) for record in batch], batch)
            return
        # A pipe: whole lines, in writes the pipe takes at once (so never half a line).
        lines = [encode(record) for record in batch]
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
            self._written(batch[start:end])
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

    def _write_whole(self, lines: list[bytes], records: list[Record]) -> None:
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
            raise _failure(exc) from None
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
            raise _failure(exc) from None

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
            if self._abandoned:
                raise _Abandoned
            if any(event & select.POLLERR for _, event in poller.poll(0)):
                return  # the reader is gone: the write reports it
            time.sleep(_EMPTY_POLL_S)

    def _written(self, records: list[Record]) -> None:
        """``records`` reached the output: journal and count them, then free their room."""
        with self._commit:
            if self._abandoned:
                raise _Abandoned
            if self._journal is not None:
                self._journal.add_many(records)
            self._stats.add_many(records)
            if self._reports is not None:
                self._reports.add_many(records)
        with self._lock:
            self._unwritten -= len(records)
            waiting = self._room is not None
        if waiting:
            self._wake_room()


def _failure(exc: OSError) -> OutputClosed | OutputFailed:
    if isinstance(exc, BrokenPipeError):
        return OutputClosed()
    return OutputFailed(exc.strerror or str(exc))


def _unread(fd: int) -> int:
    if fcntl is None:
        raise AttributeError("fcntl")  # handled by the callers as "not Linux"
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
