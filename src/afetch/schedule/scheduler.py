"""The scheduler: bounded concurrency over a lazy stream of URLs; records in completion order."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from afetch._clock import Clock, TimerHandle
from afetch._errors import ErrorType
from afetch._record import FetchError, Record
from afetch._settings import Settings
from afetch._spec import RequestSpec
from afetch.attempt.fetcher import Fetcher
from afetch.schedule.hosts import BusiestHosts, Host, HostTable, Pacer
from afetch.schedule.ordering import WINDOW_FACTOR, ReorderWindow
from afetch.schedule.retry import RETRY_STATUSES, RetryPolicy

if TYPE_CHECKING:
    from afetch.schedule.gauge import Gauge

_DONE = object()
#: URLs that may wait (parked behind a busy or paced host, or sleeping before a retry) per unit
#: of concurrency. Bounds memory while letting other hosts keep every slot busy.
LOOKAHEAD_PER_SLOT = 4


# Input items are URLs (str) or request objects (RequestSpec); plain URLs stay str.
Item = str | RequestSpec


async def _as_async(urls: Iterable[Item] | AsyncIterable[Item]) -> AsyncIterator[Item]:
    if isinstance(urls, AsyncIterable):
        async for url in urls:
            yield url
    else:
        for url in urls:
            yield url


def schedule(
    urls: Iterable[Item] | AsyncIterable[Item],
    *,
    fetcher: Fetcher,
    settings: Settings,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
) -> AsyncIterator[Record]:
    """Records for ``urls`` through ``fetcher``, within the bounds of ``settings``.

    The engine of :func:`afetch.fetch` (see there); ``clock`` defaults to the running loop.
    ``gauge`` (:class:`afetch.schedule.gauge.Gauge`) is kept up to date for a progress display;
    ``busiest`` is filled at the end with the busiest hosts' learned limits (``per_host="auto"``).
    """
    options = {"stop": stop, "clock": clock, "gauge": gauge, "busiest": busiest}
    return _schedule(urls, fetcher=fetcher, settings=settings, batches=False, **options)


def schedule_batches(
    urls: Iterable[Item] | AsyncIterable[Item],
    *,
    fetcher: Fetcher,
    settings: Settings,
    stop: asyncio.Event | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
) -> AsyncIterator[list[Record]]:
    """:func:`schedule`, giving the records finished since the last batch as one list: for a
    consumer that handles them together (the command line's writer), one step per batch rather
    than per record. A batch counts as taken when the next one is asked for."""
    options = {"stop": stop, "gauge": gauge, "busiest": busiest}
    return _schedule(urls, fetcher=fetcher, settings=settings, batches=True, **options)


async def _schedule(
    urls: Iterable[Item] | AsyncIterable[Item],
    *,
    fetcher: Fetcher,
    settings: Settings,
    batches: bool,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
) -> AsyncIterator[Any]:
    results = _Results()
    # Entered by the producer below before anything can start a task in it.
    group = asyncio.TaskGroup()
    run = _Run(
        settings,
        fetcher,
        results,
        group=group,
        clock=asyncio.get_running_loop() if clock is None else clock,
        gauge=gauge,
        busiest=busiest,
    )

    async def produce() -> None:
        try:
            async with group:
                try:
                    await run.read(urls)
                except Exception:
                    # The input broke off (an I/O error, say): the URLs already read still get
                    # their records before the error is raised.
                    await run.all_done.wait()
                    raise
                await run.all_done.wait()
                run.retire_workers()
        except BaseExceptionGroup as errors:
            # The input failed (an unreadable file, say): let callers catch it by its own type.
            if len(errors.exceptions) == 1 and isinstance(errors.exceptions[0], Exception):
                raise errors.exceptions[0] from None
            raise
        finally:
            run.close()

    producer = asyncio.create_task(produce(), name="afetch-scheduler")
    crashes: list[BaseException] = []

    def crashed(exc: BaseException) -> None:
        crashes.append(exc)
        producer.cancel()

    run.crashed = crashed
    # A done-callback rather than `finally`: it runs even if the task is cancelled before it starts.
    producer.add_done_callback(lambda _: results.put(_DONE))
    stopper = None
    if stop is not None:
        stopper = asyncio.create_task(stop.wait())
        stopper.add_done_callback(lambda _: producer.cancel())
    try:
        # The records that came in one turn of the loop, taken without a wait each.
        async for batch in _batches(results):
            if batches:
                yield batch
                run.taken(len(batch))  # when the next batch is asked for
            else:
                for record in batch:
                    run.taken()
                    yield record
        if crashes:
            raise crashes[0]
        # After a stop: finished records held behind an unfinished one (--ordered).
        drained = run.drain()
        if batches:
            if drained:
                yield drained
        else:
            for record in drained:
                yield record
        if not (stop is not None and stop.is_set()):
            await producer  # re-raise what ended the producer (an unreadable input, say)
    finally:
        for task in (producer, stopper):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _reraise(exc: BaseException) -> None:
    raise exc


async def _batches(results: _Results) -> AsyncIterator[list[Record]]:
    """What is in ``results``, a list at a time, up to the end marker."""
    items = results.items
    while True:
        if not items:
            await results.wait()
        batch = list(items)
        items.clear()
        done = batch[-1] is _DONE
        if done:
            batch.pop()
        if batch:
            yield batch
        if done:
            return


class _Results:
    """Finished records on their way to the consumer: a deque and one waiter (no bound needed:
    the scheduler holds at most ``concurrency`` untaken records)."""

    __slots__ = ("_waiter", "items")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Until something was put (returns at once if something is there)."""
        while not self.items:
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None


class _Job:
    """One input URL on its way to a record."""

    __slots__ = ("attempts", "epoch", "first", "host", "index", "last", "started", "url")

    def __init__(self, url: Item, host: Host, index: int) -> None:
        self.url = url
        self.host = host
        #: The host's ``auto`` epoch when the current attempt started (see schedule.autolimit).
        self.epoch = 0
        #: When the current attempt started, on the run's clock (``auto`` only).
        self.started = 0.0
        #: Position in the input, for ``ordered`` output.
        self.index = index
        self.attempts = 0
        #: The record of the last attempt, kept while the URL waits to retry.
        self.last: Record | None = None
        #: When the first attempt started (set only for a progress display's gauge).
        self.first: float | None = None


class _Run:
    """The scheduling state of one run, driven by callbacks on the event loop.

    Every change (a URL read, an attempt finished, a record taken, a timer fired) ends in
    :meth:`_pump`, which starts whatever may start now. Invariants:

    * ``running`` (attempts) <= ``concurrency``, so the number of fetch tasks never exceeds
      ``concurrency``; and ``untaken`` (records finished, not yet taken by the consumer) <=
      ``concurrency``: nothing starts while that many wait, so a consumer that stops taking
      stops the fetching;
    * ``waiting`` = URLs read but neither running nor finished (queued behind a saturated or paced
      host, sleeping before a retry, or read ahead); input is only read while it is below
      ``lookahead``: when a slot is free and nothing queued can use it, or in batches from
      ``lookahead/2`` up, so that a finished attempt finds the next URL queued. Memory is
      bounded for any list.
    * With ``ordered``, a finished record waits in the reorder window instead, which admits at
      most ``WINDOW_FACTOR * concurrency`` URLs not yet taken.
    * A URL waiting to retry sits on a timer, not in a task, and holds no slot at all.
    """

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        results: _Results,
        *,
        group: asyncio.TaskGroup,
        clock: Clock,
        gauge: Gauge | None = None,
        busiest: BusiestHosts | None = None,
    ) -> None:
        self._clock = clock
        self._gauge = gauge
        self._busiest = busiest
        if gauge is not None:
            # A read-only view for the display thread: two ints, read as they are.
            gauge.bind(lambda: (self._running, self._waiting))
        self._group = group
        self._fetcher = fetcher
        self._prefetch = getattr(fetcher, "prefetch", None)  # --cache's look-ahead
        self._results = results
        self._capacity = settings.concurrency
        self._lookahead = LOOKAHEAD_PER_SLOT * settings.concurrency
        #: Reading ahead: once this few URLs wait, input is read until ``lookahead`` wait.
        self._refill_at = self._lookahead // 2
        self._refilling = True
        self._policy = (
            RetryPolicy(
                retries=settings.retries,
                backoff=settings.backoff,
                max_wait=settings.max_retry_wait,
            )
            if settings.retries
            else None
        )
        polite = (
            settings.per_host is not None
            or settings.host_rate is not None
            or settings.max_host_errors is not None
        )
        self._hosts = (
            HostTable(
                limit=settings.per_host,
                rate=settings.host_rate,
                max_errors=settings.max_host_errors,
                ceiling=settings.concurrency,
            )
            if polite
            else None
        )
        # Without per-host options every URL shares one unbounded pseudo-host: no URL parsing
        # and no per-host state on the hot path.
        self._shared_host = Host(None)
        self._window = (
            ReorderWindow[Record](settings.concurrency * WINDOW_FACTOR)
            if settings.ordered
            else None
        )
        self._next_index = 0
        self._pacer = Pacer(rate=settings.rate) if settings.rate else None
        self._pacer_wake: TimerHandle | None = None
        #: Hosts with queued URLs, taken in turn (round robin).
        self._ready: deque[Host] = deque()
        self._timers: set[TimerHandle] = set()
        #: Records emitted and not yet taken by the consumer (at most ``concurrency``).
        self._untaken = 0
        self._running = 0
        self._waiting = 0
        #: Jobs handed to the workers, and workers waiting for one (see _work).
        self._jobs: deque[_Job] = deque()
        self._idle_workers: list[asyncio.Future[None]] = []
        self._workers = 0
        self._retired = False
        #: Plain URLs go to the fetcher's callback path when it has one (no worker task).
        self._counts = fetcher.counts
        #: Ends the run with a failure from a callback (set by :func:`schedule`).
        self.crashed: Callable[[BaseException], None] = _reraise
        self._input_done = False
        self._closed = False
        #: Whether the reader may admit more URLs (a plain flag, checked per URL), and the
        #: future it waits on when not.
        self._input_wanted = True
        self._input_waiter: asyncio.Future[None] | None = None
        self.all_done = asyncio.Event()

    # -- input ---------------------------------------------------------------------------------

    async def read(self, urls: Iterable[Item] | AsyncIterable[Item]) -> None:
        """Admit URLs from ``urls`` as long as they can be used or parked within bounds."""
        # An async source is iterated as it is: no second generator per URL.
        source = urls if isinstance(urls, AsyncIterable) else _as_async(urls)
        window = self._window
        try:
            async for url in source:
                if window is not None:
                    window.admit()
                self._admit(url)
                while not self._input_wanted or (window is not None and window.full):
                    self._input_waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._input_waiter
                    finally:
                        self._input_waiter = None
        except Exception:
            self._input_done = True  # nothing more will come; let what was read finish
            self._pump()
            raise
        self._input_done = True
        self._pump()

    def _admit(self, url: Item) -> None:
        if self._hosts is None:
            host = self._shared_host
        else:
            where = url if type(url) is str else url.url
            host = self._hosts.get(where, now=self._clock.time())
        self._waiting += 1
        if self._prefetch is not None and type(url) is str:
            self._prefetch(url)
        self._enqueue(_Job(url, host, self._next_index))
        self._next_index += 1
        capacity = self._capacity
        if self._running < capacity and self._untaken < capacity:
            self._pump()
        elif not self._closed and not (self._refilling and self._waiting < self._lookahead):
            # Reading ahead while every slot is busy: nothing can start, only input may stop
            # (and while a refill is under way and below the bound, it goes on: no change).
            self._want_input_or_finish()

    # -- the pump ------------------------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        job.host.queue.append(job)
        self._mark_ready(job.host)

    def _mark_ready(self, host: Host) -> None:
        """Put ``host`` in the ready line if it has queued URLs and is not there yet."""
        if not host.on_ready_list and host.queue:
            host.on_ready_list = True
            self._ready.append(host)

    def _set_aside(self, host: Host) -> None:
        """Take the host at the head of the ready line out of it (it is marked ready again when
        one of its attempts ends or its pacing wake-up fires)."""
        self._ready.popleft()
        host.on_ready_list = False

    def _pump(self) -> None:
        """Start what may start; then decide whether more input is wanted, or the run is done."""
        if self._closed:
            return
        self._start_what_may_start()
        self._want_input_or_finish()

    def _start_what_may_start(self) -> None:
        """Start queued URLs, host after host, while slots are free and no limit holds them."""
        ready = self._ready
        now: float | None = None
        capacity = self._capacity
        while self._running < capacity and self._untaken < capacity and ready:
            host = ready[0]
            if host.down:
                self._give_up_queued(host)
                continue
            limit = host.limit  # Host.saturated, inlined (down was ruled out just above)
            if limit is not None and host.in_flight >= limit:
                self._set_aside(host)
                continue
            if host.pacer is not None or self._pacer is not None:
                now = self._clock.time() if now is None else now
                if host.pacer is not None and host.pacer.next_at > now:
                    self._set_aside(host)
                    self._wake_host_at(host, host.pacer.next_at)
                    continue
                if self._pacer is not None and self._pacer.next_at > now:
                    self._wake_pump_at(self._pacer.next_at)
                    break  # the overall rate holds back every host
                self._take_pacing(host, now)
            self._start_next(host)

    def _take_pacing(self, host: Host, now: float) -> None:
        if self._pacer is not None:
            self._pacer.take(now=now)
        if host.pacer is not None:
            host.pacer.take(now=now)

    def _start_next(self, host: Host) -> None:
        """Start the next URL of the host at the head of the ready line."""
        job = host.queue.popleft()
        self._waiting -= 1
        # Round robin: a host with more queued goes to the back of the line.
        self._ready.popleft()
        if host.queue:
            self._ready.append(host)
        else:
            host.on_ready_list = False
        if host.auto is not None:
            job.epoch = host.auto.epoch
            # Latency on the run's clock (not the record's elapsed_ms): tests can fake it.
            job.started = self._clock.time()
        host.in_flight += 1
        self._running += 1
        if self._gauge is not None:
            url = job.url if type(job.url) is str else job.url.url
            job.first = self._gauge.start(job, url, first=job.first)
        if self._counts and type(job.url) is str:
            self._fetcher.start(job.url, self._counted, job)
        else:
            self._jobs.append(job)
            if self._idle_workers:
                self._idle_workers.pop().set_result(None)
            elif self._workers < self._capacity:
                self._workers += 1
                self._group.create_task(self._work())

    def _give_up_queued(self, host: Host) -> None:
        """Finish the queued URLs of an unreachable host, as far as slots allow."""
        self._set_aside(host)
        while host.queue and self._untaken < self._capacity:
            self._give_up(host.queue.popleft())
        self._mark_ready(host)  # the rest, once slots are free again

    def _want_input_or_finish(self) -> None:
        # Input is wanted when a slot is free and nothing queued can use it, and also, in
        # batches, to keep URLs queued ahead: a finished attempt then starts the next URL in
        # the same worker, without a wake-up, and the input is read once per lookahead/2 URLs
        # rather than once per URL. Either way at most ``lookahead`` URLs wait.
        waiting = self._waiting
        if waiting >= self._lookahead:
            self._refilling = False
        elif waiting <= self._refill_at:
            self._refilling = True
        capacity = self._capacity
        if (
            not self._input_done
            and waiting < self._lookahead
            and (
                self._refilling
                or (self._running < capacity and self._untaken < capacity and not self._ready)
            )
        ):
            if not self._input_wanted:
                self._input_wanted = True
                self._wake_reader()
        else:
            self._input_wanted = False
            if self._input_done and not self._running and not self._waiting:
                self.all_done.set()

    def _wake_reader(self) -> None:
        """The reader checks again whether it may read on (input wanted, room in the window)."""
        waiter = self._input_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- attempts ------------------------------------------------------------------------------

    # Attempts run in at most ``concurrency`` long-lived worker tasks, not a task each: a worker
    # that finishes an attempt usually finds the next job already queued by the pump that ran
    # on its way out, so a job changes hands without a task, a future or a loop turn.

    async def _work(self) -> None:
        jobs = self._jobs
        attempt = self._fetcher.attempt
        while True:
            if jobs:
                job = jobs.popleft()
                record, retry_after = await attempt(job.url)
                self._attempted(job, record, retry_after)
            elif self._retired:
                return
            else:
                idle = asyncio.get_running_loop().create_future()
                self._idle_workers.append(idle)
                await idle

    def _counted(self, job: _Job, record: Record, retry_after: str | None) -> None:
        """An attempt on callbacks (Fetcher.start) ended: as a worker's attempt does."""
        if self._closed:
            return  # the run was stopped: the record of an attempt in flight is dropped
        try:
            self._attempted(job, record, retry_after)
        except BaseException as exc:
            # No task to carry it: the run ends with it, as a worker's failure would end it.
            self.crashed(exc)

    def retire_workers(self) -> None:
        """Everything is done: idle workers end (so the task group can close)."""
        self._retired = True
        for idle in self._idle_workers:
            if not idle.done():
                idle.set_result(None)
        self._idle_workers.clear()

    def _attempted(self, job: _Job, record: Record, retry_after: str | None) -> None:
        host = job.host
        host.in_flight -= 1
        self._running -= 1
        if self._gauge is not None:
            self._gauge.end(job)
        job.attempts += 1
        if self._hosts is not None:
            self._hosts.note(
                host,
                None if record.error is None else record.error.type,
                status=record.status,
                elapsed_ms=0.0 if host.auto is None else (self._clock.time() - job.started) * 1000,
                epoch=job.epoch,
            )
        wait = None
        if self._policy is not None and (
            record.error is not None or record.status in RETRY_STATUSES
        ):  # what RetryPolicy.should_retry could say yes to at all
            wait = self._retry_wait(job, record, retry_after)
        if wait is None:
            if self._window is None and record.attempts == job.attempts:
                # _emit, inlined for the usual case.
                self._untaken += 1
                self._results.put(record)
            else:
                self._emit(job, record)
        else:
            self._sleep_before_retry(job, record, wait)
            if self._gauge is not None and self._policy is not None:
                # For the ETA: this wait, the mean backoffs after it, and the attempts left.
                policy = self._policy
                later = range(job.attempts + 1, policy.retries + 1)
                waits = wait + sum(policy.ceiling(retry) / 2 for retry in later)
                self._gauge.retry(job, waits=waits, attempts=policy.retries + 1 - job.attempts)
        if not host.on_ready_list and host.queue:  # _mark_ready, inlined
            host.on_ready_list = True
            self._ready.append(host)
        if self._hosts is not None:
            self._hosts.release(host, now=self._clock.time())
        self._pump()

    def _retry_wait(self, job: _Job, record: Record, retry_after: str | None) -> float | None:
        """Seconds before ``job`` tries again, or None to emit ``record`` as it is."""
        policy = self._policy
        # The record says the method when it is not a plain GET.
        method = record.method or "GET"
        if policy is None or job.host.down or not policy.should_retry(record, method=method):
            return None
        try:
            return policy.wait_after(job.attempts, retry_after=retry_after, status=record.status)
        except Exception:
            # Whatever a server sends, one record per URL: a header the policy chokes on ends
            # the retries instead of the run.
            return None

    def _give_up(self, job: _Job) -> None:
        """Finish a queued URL of an unreachable host without trying it (again)."""
        self._waiting -= 1
        if job.last is not None:  # tried before: its last attempt says what went wrong
            if self._gauge is not None:
                self._gauge.end(job)  # no retry after all
            self._emit(job, job.last)
            return
        error = FetchError(
            ErrorType.HOST_UNREACHABLE.value,
            f"not tried: {job.host.failures} consecutive connection failures to this host",
        )
        self._emit(job, self._fetcher.unattempted(job.url, error))

    # -- records -------------------------------------------------------------------------------

    def _emit(self, job: _Job, record: Record) -> None:
        if record.attempts != job.attempts:
            record = replace(record, attempts=job.attempts)
        if self._window is None:
            self._untaken += 1  # nothing starts while `concurrency` records wait to be taken
            self._results.put(record)
            return
        for due in self._window.complete(job.index, record):
            self._results.put(due)

    def taken(self, count: int = 1) -> None:
        """The consumer took ``count`` records: their slots (or places in the window) are free."""
        window = self._window
        if window is not None:
            was_full = window.full
            window.taken(count)
            if was_full and not window.full:
                self._wake_reader()
            return
        held_back = self._untaken >= self._capacity
        self._untaken -= count
        if held_back and self._untaken < self._capacity:
            # Only a full set of untaken records held anything back (starts, input).
            self._pump()

    def drain(self) -> list[Record]:
        """After a stop: finished records still held back by the reorder window, in order."""
        return [] if self._window is None else self._window.drain()

    # -- timers --------------------------------------------------------------------------------

    def _sleep_before_retry(self, job: _Job, record: Record, wait: float) -> None:
        """Park ``job`` on a timer (no task, no slot) and queue it again after ``wait`` s."""
        job.last = record
        self._waiting += 1
        job.host.sleeping += 1

        def wake() -> None:
            self._timers.discard(handle)
            job.host.sleeping -= 1
            self._enqueue(job)
            self._pump()

        handle = self._clock.call_later(wait, wake)
        self._timers.add(handle)

    def _wake_host_at(self, host: Host, when: float) -> None:
        """Mark a paced host ready again at ``when`` (one wake-up per host at a time)."""
        if host.wake_pending:
            return
        host.wake_pending = True

        def wake() -> None:
            self._timers.discard(handle)
            host.wake_pending = False
            self._mark_ready(host)
            self._pump()

        handle = self._clock.call_at(when, wake)
        self._timers.add(handle)

    def _wake_pump_at(self, when: float) -> None:
        """Pump again at ``when``, when the overall ``rate`` allows the next start."""
        if self._pacer_wake is not None:
            return

        def wake() -> None:
            self._pacer_wake = None
            self._pump()

        self._pacer_wake = self._clock.call_at(when, wake)

    def close(self) -> None:
        """Nothing more starts; pending timers are dropped."""
        self._closed = True
        if self._busiest is not None and self._hosts is not None:
            self._busiest.fill(self._hosts)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._pacer_wake is not None:
            self._pacer_wake.cancel()
