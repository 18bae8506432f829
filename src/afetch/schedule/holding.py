"""``--confirm``'s holding: failures held back, sent to be tried once more, drained on a stop.

Which failures and how they are tried is schedule.confirm's (pure policy); this keeps the held
URLs of one run. They hold no slot: a URL on its way is parked on the run's timers.

Whether an outcome failed is the run's rule for ok (confirm.Verdicts). A blocking one
(``--ok-if``: a jq worker process) is asked from a thread, a batch at a time, never on the
event loop: an outcome then waits for its verdict (:data:`JUDGING`, counted by the run as
waiting) and comes back through ``judged``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from afetch._record import Record
from afetch._settings import Settings
from afetch.schedule import confirm
from afetch.schedule.job import Job
from afetch.schedule.ordering import ReorderWindow

#: What :meth:`ConfirmHold.outcome` says of an outcome that waits for its verdict.
JUDGING = object()


class ConfirmHold:
    """The failures of one run held to be tried once more after ``delay`` seconds.

    ``verdicts``: the run's rule for ok (None: the default rule). With a blocking one,
    ``judged(job, record)`` is called on the loop once an outcome's verdict is known, with the
    record to emit or None (held); ``crashed`` gets an exception the rule raised.
    """

    def __init__(
        self,
        delay: float,
        park: Callable[[Job, float], None],
        *,
        verdicts: confirm.Verdicts | None = None,
        judged: Callable[[Job, Record | None], None] | None = None,
        crashed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._delay = delay
        #: Parks a job on the run's timers for a delay (it then waits: no slot).
        self._park = park
        self._verdicts = verdicts
        self._judged = judged
        self._crashed = crashed
        #: Failures held and not yet on their way. One list for the life of the run: the run
        #: checks it as it is (no call) to know whether anything is held.
        self.held: list[Job] = []
        #: Every job whose record is held or waits for its verdict, until it is emitted (for a
        #: stop).
        self._unconfirmed: set[Job] = set()
        #: Outcomes waiting for a blocking rule, and whether a batch of them is being judged.
        self._asking: list[tuple[Job, Record]] = []
        self._busy = False
        self._closed = False

    def outcome(self, job: Job, record: Record) -> Record | object | None:
        """The record to emit for ``job``'s outcome ``record``, None when it is held to be
        tried once more, or :data:`JUDGING` (its verdict comes later, through ``judged``)."""
        verdicts = self._verdicts
        if verdicts is None:
            return self._decide(job, record, record.ok)
        if not verdicts.blocking:
            return self._decide(job, record, verdicts.decide([record])[0])
        if not job.confirming:
            job.last = record  # what a stop gives meanwhile
        self._unconfirmed.add(job)
        self._asking.append((job, record))
        if not self._busy:
            self._ask()
        return JUDGING

    def _decide(self, job: Job, record: Record, ok: bool) -> Record | None:
        if job.confirming:
            self._unconfirmed.discard(job)
            assert job.last is not None
            return confirm.confirmed(job.last, record, ok)
        if not confirm.worth_confirming(record, ok):
            self._unconfirmed.discard(job)
            return record
        job.last, job.confirming = record, True
        job.url = confirm.confirming_request(job.url, record)
        job.host.sleeping += 1  # the host is not forgotten meanwhile
        self.held.append(job)
        self._unconfirmed.add(job)
        if len(self.held) >= confirm.HOLD_LIMIT:
            self.release()
        return None

    def _ask(self) -> None:
        """Judge the waiting outcomes in a thread, all in one batch (those that come meanwhile
        make the next one)."""
        asking, self._asking = self._asking, []
        assert self._verdicts is not None
        self._busy = True
        records = [record for _, record in asking]
        answer = asyncio.get_running_loop().run_in_executor(None, self._verdicts.decide, records)
        answer.add_done_callback(partial(self._answered, asking))

    def _answered(
        self, asking: list[tuple[Job, Record]], answer: asyncio.Future[list[bool]]
    ) -> None:
        self._busy = False
        if self._closed or answer.cancelled():
            return
        error = answer.exception()
        if error is not None:
            if self._crashed is not None:
                self._crashed(error)
            return
        assert self._judged is not None
        for (job, record), ok in zip(asking, answer.result(), strict=True):
            if job in self._unconfirmed:  # else forgotten or drained meanwhile
                self._judged(job, self._decide(job, record, ok))
        if self._asking:
            self._ask()

    def release(self) -> None:
        """The held failures are tried once more, after the pause (on timers: no slots)."""
        held = self.held[:]
        self.held.clear()
        for job in held:
            job.host.sleeping -= 1
            self._park(job, self._delay)

    def forget(self, job: Job) -> None:
        """``job`` ends otherwise (its host was given up): its record is no longer held."""
        self._unconfirmed.discard(job)

    def drain(self) -> list[Job]:
        """After a stop: the jobs whose record is still held, in input order (each with its
        first failure as ``last``: not confirmed)."""
        held = sorted(self._unconfirmed, key=lambda job: job.index)
        self._unconfirmed.clear()
        return held

    def close(self) -> None:
        """The run is over: a verdict that comes later is not heard."""
        self._closed = True


def confirm_hold(
    settings: Settings,
    park: Callable[[Job, float], None],
    verdicts: confirm.Verdicts | None,
    judged: Callable[[Job, Record | None], None],
    crashed: Callable[[BaseException], None],
) -> ConfirmHold | None:
    """The ``--confirm`` hold of one run (see :class:`ConfirmHold`); None when it is off."""
    if not settings.confirm:
        return None
    return ConfirmHold(
        settings.confirm_delay, park, verdicts=verdicts, judged=judged, crashed=crashed
    )


def drain_held(confirm: ConfirmHold | None, window: ReorderWindow[Record] | None) -> list[Record]:
    """After a stop: the finished records a run still holds back, by the reorder ``window`` (in
    order) or for ``--confirm`` (as they first ended: not confirmed)."""
    held = [] if confirm is None else confirm.drain()
    if window is None:
        return [job.last for job in held if job.last is not None]
    due = []
    for job in held:
        if job.last is not None:
            due += window.complete(job.index, job.last)
    return due + window.drain()
