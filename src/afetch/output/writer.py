"""Records go out from a writer thread, so a slow reader never blocks the event loop.

The loop hands records over through a bounded hand-off (:meth:`RecordWriter.offer_many`, and
:meth:`RecordWriter.put_many` to wait for room). The writer thread takes whatever has queued up,
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
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO, Protocol

from afetch._clock import Clock
from afetch._record import Record
from afetch._stats import Stats
from afetch.output.sinks import OutputClosed, OutputFailed, Sink
from afetch.output.whole_lines import Abandoned, WholeLines

if TYPE_CHECKING:
    from afetch.input.journal import Journal

#: Records handed over but not yet written, at most. About two pipe buffers of typical records:
#: enough for the writer to batch, small enough that a stopped run drops little.
HANDOFF_RECORDS = 256
#: How long the idle writer waits for more records before it asks to be woken: bounds the
#: delay a record can spend in the hand-off (a lone record goes out at once), and saves thread
#: switches: one per batch, not per record (a shorter linger costs more CPU: docs/performance.md,
#: History).
LINGER_S = 0.02


class Counts(Protocol):
    """What else counts the records written (``--report``'s tallies); never raises."""

    def add_many(self, records: list[Record]) -> None: ...


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
        self._sink = sink
        # Decides each record's ok (and --history keys) before it is written (afetch.watch).
        self._judge = judge
        # Held around each batch's writes when the output is the terminal a live table is drawn
        # on (see ProgressDisplay.above); elsewhere a no-op.
        self._terminal = terminal or contextlib.nullcontext
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
        self._lines = WholeLines(
            stream.fileno(), written=self._written, abandoned=lambda: self._abandoned
        )
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
        return await self.put_many([record]) == 1

    async def put_many(self, records: list[Record]) -> int:
        """Hand ``records`` over in order, waiting for room as often as needed: how many were
        (all, unless :meth:`interrupt` came first). Each wait ends with as many handed over as
        fit, under one lock: a wave of responses larger than the hand-off (-c 500) is not
        handed over one record and one lock at a time."""
        handed = 0
        while handed < len(records):
            taken = self.offer_many(records[handed:] if handed else records)
            if taken:
                handed += taken
                continue
            room: asyncio.Future[None] = self._loop.create_future()
            with self._lock:
                if self._interrupted:
                    break
                if self._unwritten < self._limit or self._failure is not None:
                    continue
                self._room = room
            await room
        return handed

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
                    lines = self._sink.encode_many(batch)
                    with self._terminal():
                        self._lines.write(lines, batch)
                    continue
                tail = self._sink.finish()  # a CSV header, for a run without records
                if tail:
                    self._lines.write_whole([tail], [])
                return
        except Abandoned:
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

    def _written(self, records: list[Record]) -> None:
        """``records`` reached the output: journal and count them, then free their room."""
        with self._commit:
            if self._abandoned:
                raise Abandoned
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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
