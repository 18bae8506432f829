"""The scheduling state of one run and its pump: what may start, what is read, what is done."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from afetch._clock import Clock
from afetch._record import Record
from afetch._settings import Settings
from afetch.attempt.fetcher import Fetcher, ServerHints
from afetch.schedule.affinity import Affinity, lookahead
from afetch.schedule.dispatch import Dispatch
from afetch.schedule.holding import JUDGING, confirm_hold, drain_held
from afetch.schedule.hosts import BusiestHosts, Host, host_table, locate, not_tried
from afetch.schedule.intake import Intake
from afetch.schedule.job import Item, Job
from afetch.schedule.ordering import WINDOW_FACTOR, ReorderWindow
from afetch.schedule.pacing import Pacing
from afetch.schedule.results import Results
from afetch.schedule.retry import RETRY_STATUSES, retry_policy
from afetch.schedule.timers import Timers

if TYPE_CHECKING:
    from afetch.schedule.confirm import Verdicts
    from afetch.schedule.gauge import Gauge


class Run:
    """The scheduling state of one run, driven by callbacks on the event loop.

    Every change (a URL read, an attempt finished, a record taken, a timer fired) ends in
    :meth:`_pump`, which starts whatever may start now. Invariants:

    * ``running`` (attempts) <= ``concurrency``, so the number of fetch tasks never exceeds
      ``concurrency``; and ``untaken`` (records finished, not yet taken by the consumer) <=
      ``concurrency``: nothing starts while that many wait, so a consumer that stops taking
      stops the fetching;
    * ``waiting`` = URLs read but neither running nor finished (queued behind a saturated or paced
      host, sleeping before a retry, or read ahead); input is only read while it is below
      ``lookahead``: when a slot is free and nothing queued can use it, or in batches, so that
      a finished attempt finds its host's next URL queued (schedule.affinity). Memory is bounded.
    * With ``ordered``, a finished record waits in the reorder window instead, which admits at
      most ``WINDOW_FACTOR * concurrency`` URLs not yet taken.
    * A URL waiting to retry sits on a timer (schedule.timers), not in a task, and holds no slot.

    How attempts run is :class:`afetch.schedule.dispatch.Dispatch`'s to say: on the fetcher's
    callbacks (called from here, no hop per URL) or in its worker tasks.
    """

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        results: Results,
        *,
        group: asyncio.TaskGroup,
        clock: Clock,
        crashed: Callable[[BaseException], None],
        gauge: Gauge | None = None,
        busiest: BusiestHosts | None = None,
        verdicts: Verdicts | None = None,
    ) -> None:
        self._clock = clock
        self._gauge = gauge
        self._busiest = busiest
        if gauge is not None:
            # A read-only view for the display thread: two ints, read as they are.
            gauge.bind(lambda: (self._running, self._waiting))
        self._results = results
        self._capacity = capacity = settings.concurrency
        self._timers = Timers(
            clock, enqueue=self._enqueue, mark_ready=self._mark_ready, pump=self._pump
        )
        self._policy = retry_policy(settings)
        self._hosts = host_table(settings, clock.time)
        self._server_limits = settings.rate_limit_headers
        #: ``--confirm``: failures (by ``verdicts``) held to be tried once more; None: off.
        #: ``_held``: those not yet on their way (checked as it is, on every pump).
        self._confirm = confirm_hold(settings, self._park, verdicts, self._judged, crashed)
        self._held: list[Job] = [] if self._confirm is None else self._confirm.held
        # Without per-host options every URL shares one unbounded pseudo-host: no URL parsing
        # and no per-host state on the hot path.
        self._shared_host = Host(None)
        self._pacing = Pacing(settings, self._hosts, self._shared_host, clock=clock)
        self._pacer = self._pacing.pacer  # the overall --rate, read as it is
        self._dispatch = dispatch = Dispatch(
            fetcher,
            group=group,
            capacity=capacity,
            attempted=self._attempted,
            pace_extra=self._pacing.extra,
        )
        self._prefetch, self._direct = dispatch.prefetch, dispatch.direct
        self._resolve_ahead = dispatch.resolve_ahead
        self._origin = ""
        reach = lookahead(capacity, prefetch=self._prefetch is not None)
        self._intake = Intake(reach, batch=_batch(reach, capacity))  # its lookahead: the bound
        self._counted_ = self._counted  # bound once: the callback of every direct attempt
        self._crashed = crashed  # ends the run with a failure in a callback (no task has it)
        self._window = ReorderWindow[Record](capacity * WINDOW_FACTOR) if settings.ordered else None
        self._next_index = 0
        #: Hosts with queued URLs, taken in turn (round robin).
        self._ready: deque[Host] = deque()
        self._affinity = Affinity(
            reach,
            queue=self._shared_host.queue,
            ready=self._ready,
            start=self._start,
            widen=None if self._prefetch is not None else self._widen,
        )
        #: Records emitted and not yet taken by the consumer (at most ``concurrency``).
        self._untaken = 0
        self._running = 0
        self._waiting = 0
        self._input_done = False
        self._closed = False
        self.all_done = asyncio.Event()

    def _widen(self, reach: int) -> None:
        """A list over many hosts: more URLs may wait (schedule.affinity.LOOKAHEAD_WIDE)."""
        self._intake.resize(reach, batch=_batch(reach, self._capacity))

    # -- input ---------------------------------------------------------------------------------

    async def read(self, urls: Iterable[Item] | AsyncIterable[Item]) -> None:
        """Admit URLs from ``urls`` as long as they can be used or parked within bounds."""
        try:
            await self._intake.feed(urls, self._admit, self._window)
        except Exception:
            self._input_done = True  # nothing more will come; let what was read finish
            self._pump()
            raise
        self._input_done = True
        self._pump()

    def _admit(self, url: Item) -> None:
        where = url if type(url) is str else url.url
        end = where.find("/", 8)  # host_of, inlined
        origin = where if end < 0 else where[:end]
        if self._hosts is None:
            job = Job(url, self._shared_host, self._next_index)
            self._affinity.add(job, origin)
            self._shared_host.queue.append(job)
            self._mark_ready(self._shared_host)
        else:
            key, target = locate(where)
            host = self._hosts.get(key)
            self._enqueue(Job(url, host, self._next_index, target))
        if self._resolve_ahead is not None and origin != self._origin:
            self._origin = origin  # the last one told (most lists repeat a host in a row)
            self._resolve_ahead(origin)  # the engine looks the host up while the URL waits
        self._waiting += 1
        prefetch = self._prefetch
        if prefetch is not None and type(url) is str:
            prefetch(url)  # --cache starts looking it up before its attempt starts
        self._next_index += 1
        capacity = self._capacity
        if self._running < capacity and self._untaken < capacity:
            self._pump()
        else:
            intake = self._intake
            if not self._closed and not (intake.refilling and self._waiting < intake.lookahead):
                # Reading ahead while every slot is busy: nothing can start, only input may
                # stop (and while a refill is under way and below the bound, it goes on).
                self._want_input_or_finish()

    # -- the pump ------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        job.host.queue.append(job)
        if job.line is not None:  # back from a wait (its line may be gone since)
            self._affinity.add(job, job.line.key)
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
        freed = self._affinity.freed  # slots freed while records waited to be taken go first
        while freed and self._running < capacity and self._untaken < capacity:
            self._affinity.follow(freed.popleft())
        if freed and self._running >= capacity:
            freed.clear()  # the rest's slots are taken: at most concurrency are kept
        while self._running < capacity and self._untaken < capacity and ready:
            host = ready[0]
            if not host.queue:  # its freed slots took its URLs (schedule.affinity)
                self._set_aside(host)
                if self._hosts is not None:
                    self._hosts.release(host)
                continue
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
                    if host.pacer.next_at < math.inf:  # else the answer of the probe out wakes it
                        self._timers.wake_host_at(host, host.pacer.next_at)
                    continue
                if self._pacer is not None and self._pacer.next_at > now:
                    self._timers.wake_pump_at(self._pacer.next_at)
                    break  # the overall rate holds back every host
                self._pacing.take(host, now)
            self._start_next(host)

    def _start_next(self, host: Host) -> None:
        """Start the next URL of the host at the head of the ready line."""
        job = host.queue.popleft()
        if self._hosts is None:
            job = self._affinity.take(job)
            if job is None:  # each had started out of turn
                self._set_aside(host)
                return
        # Round robin: a host with more queued goes to the back of the line.
        self._ready.popleft()
        if host.queue:
            self._ready.append(host)
        else:
            host.on_ready_list = False
        self._start(job)

    def _start(self, job: Job) -> None:
        """Start an attempt at ``job``, off its host's queue and no longer waiting."""
        self._waiting -= 1
        host = job.host
        if host.auto is not None:
            job.epoch = host.auto.epoch
            # Latency on the run's clock (not the record's elapsed_ms): tests can fake it.
            job.started = self._clock.time()
        host.in_flight += 1
        self._running += 1
        if host.pacer is not None:
            job.paced_in = host.pacer.epoch
        if self._gauge is not None:
            url = job.url if type(job.url) is str else job.url.url
            job.first = self._gauge.start(job, url, first=job.first)
        direct = self._direct
        if direct is not None and type(job.url) is str:
            direct(job.url, self._counted_, job, job.target)  # on the fetcher's callbacks
        else:
            self._dispatch.start(job)  # in a worker task

    def _give_up_queued(self, host: Host) -> None:
        """Finish the queued URLs of an unreachable host, as far as slots allow."""
        self._set_aside(host)
        while host.queue and self._untaken < self._capacity:
            self._give_up(host.queue.popleft())
        self._mark_ready(host)  # the rest, once slots are free again

    def _want_input_or_finish(self) -> None:
        if not self._input_done:  # (Intake.want: whether input is wanted)
            capacity = self._capacity
            idle = self._running < capacity and self._untaken < capacity and not self._ready
            self._intake.want(self._waiting, idle)
        elif not self._running and not self._waiting and not self._held:
            self.all_done.set()
        if self._held and not self._running and not self._waiting:
            # Nothing else in flight or waiting: the end of the run, or --ordered output held
            # behind a failure being confirmed. (Parked for confirming counts as waiting.)
            assert self._confirm is not None
            self._confirm.release()

    # -- attempts ------------------------------------------------------------------------------

    def _counted(self, job: Job, record: Record, hints: ServerHints | None) -> None:
        """An attempt on callbacks ended (after a stop: dropped); a failure here ends the run."""
        if self._closed:
            return
        try:
            self._attempted(job, record, hints)
        except BaseException as exc:
            self._crashed(exc)

    def _attempted(self, job: Job, record: Record, hints: ServerHints | None) -> None:
        """An attempt at ``job`` ended in ``record``; ``hints``: its last head's, on pacing."""
        job.attempts += 1
        if record.attempts != job.attempts:  # the fetcher knows one attempt, the URL had these
            record = replace(record, attempts=job.attempts)
        host = job.host
        host.in_flight -= 1
        self._running -= 1
        if self._server_limits and host.pacer is not None:
            self._pacing.heard(host, record, hints, job.paced_in)
        if self._gauge is not None:
            self._gauge.end(job)
        if self._hosts is not None and (host.tracked or host.auto is not None):
            # (HostTable.note has nothing to count for a host neither tracked nor auto.)
            self._hosts.note(
                host,
                None if record.error is None else record.error.type,
                status=record.status,
                elapsed_ms=0.0 if host.auto is None else (self._clock.time() - job.started) * 1000,
                epoch=job.epoch,
            )
        wait = None
        policy = self._policy
        if (
            policy is not None
            # what RetryPolicy.should_retry could say yes to at all
            and (record.error is not None or record.status in RETRY_STATUSES)
            and not host.down
            and not job.confirming  # its one more try was this one
        ):
            retry_after = None if hints is None else hints.retry_after
            wait = policy.next_wait(record, job.attempts, retry_after=retry_after)
        if wait is None:
            if self._confirm is not None:
                held = self._confirm.outcome(job, record)
                if held is JUDGING:
                    self._waiting += 1  # until _judged
                elif held is not None:
                    self._emit(job, held)  # type: ignore[arg-type]
            elif self._window is None:
                # _emit, inlined for the usual case.
                self._untaken += 1
                self._results.put(record)
            else:
                self._emit(job, record)
        else:
            job.last = record
            self._park(job, wait)
            if self._gauge is not None and policy is not None:
                # For the ETA: this wait, the mean backoffs after it, and the attempts left.
                waits = wait + policy.mean_backoff_after(job.attempts)
                self._gauge.retry(job, waits=waits, attempts=policy.retries + 1 - job.attempts)
        if not host.on_ready_list and host.queue:  # _mark_ready, inlined
            host.on_ready_list = True
            self._ready.append(host)
        if job.line is not None or host.queue:  # else Affinity.ended has nothing to do
            self._affinity.ended(
                job,
                paced=self._pacer is not None,
                held=self._untaken >= self._capacity,
                answered=record.error is None,
            )
        if self._hosts is not None:
            self._hosts.release(host)
        self._pump()

    def _judged(self, job: Job, record: Record | None) -> None:
        """``--confirm`` with a blocking rule for ok: ``job``'s outcome was judged, ``record``
        is to be emitted (None: held to be tried once more)."""
        if self._closed:
            return
        self._waiting -= 1
        if record is not None:
            self._emit(job, record)
        self._pump()

    def _park(self, job: Job, delay: float) -> None:
        """``job`` waits ``delay`` seconds on a timer (no slot), to be tried again."""
        self._waiting += 1
        self._timers.park(job, delay)

    def _give_up(self, job: Job) -> None:
        """Finish a queued URL of an unreachable host without trying it (again)."""
        self._waiting -= 1
        if self._confirm is not None:
            self._confirm.forget(job)  # a held failure whose host was given up meanwhile
        if job.last is not None:  # tried before: its last attempt says what went wrong
            if self._gauge is not None:
                self._gauge.end(job)  # no retry after all
            self._emit(job, job.last)
            return
        self._emit(job, self._dispatch.unattempted(job, not_tried(job.host)))

    # -- records -------------------------------------------------------------------------------

    def _emit(self, job: Job, record: Record) -> None:
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
                self._intake.wake()  # room again: the reader may go on
            return
        held_back = self._untaken >= self._capacity
        self._untaken -= count
        if held_back and self._untaken < self._capacity:
            # Only a full set of untaken records held anything back (starts, input).
            self._pump()

    def drain(self) -> list[Record]:
        """After a stop: finished records still held back, by the reorder window (in order) or
        for ``--confirm`` (as they first ended: not confirmed)."""
        return drain_held(self._confirm, self._window)

    def retire_workers(self) -> None:
        """Everything is done: idle workers end (so the task group can close)."""
        self._dispatch.retire()

    def close(self) -> None:
        """Nothing more starts; pending timers are dropped, attempts in flight are not heard."""
        self._closed = True
        if self._confirm is not None:
            self._confirm.close()
        if self._busiest is not None and self._hosts is not None:
            self._busiest.fill(self._hosts)
        self._timers.close()


def _batch(reach: int, capacity: int) -> int:
    """URLs read in one go on the loop: at most 2 × concurrency."""
    return min(reach // 2, 2 * capacity)
