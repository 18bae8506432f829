"""``--confirm``'s holding: failures held back, sent to be tried once more, drained on a stop.

Which failures and how they are tried is schedule.confirm's (pure policy); this keeps the held
URLs of one run. They hold no slot: a URL on its way is parked on the run's timers.
"""

from __future__ import annotations

from collections.abc import Callable

from afetch._record import Record
from afetch.schedule import confirm
from afetch.schedule.job import Job
from afetch.schedule.ordering import ReorderWindow


class ConfirmHold:
    """The failures of one run held to be tried once more after ``delay`` seconds."""

    def __init__(self, delay: float, park: Callable[[Job, float], None]) -> None:
        self._delay = delay
        #: Parks a job on the run's timers for a delay (it then waits: no slot).
        self._park = park
        #: Failures held and not yet on their way. One list for the life of the run: the run
        #: checks it as it is (no call) to know whether anything is held.
        self.held: list[Job] = []
        #: Every job whose record is held, until it is emitted (for a stop).
        self._unconfirmed: set[Job] = set()

    def outcome(self, job: Job, record: Record) -> Record | None:
        """The record to emit for ``job``'s outcome ``record``, or None when it is held to be
        tried once more."""
        if job.confirming:
            self._unconfirmed.discard(job)
            assert job.last is not None
            return confirm.confirmed(job.last, record)
        if not confirm.worth_confirming(record):
            return record
        job.last, job.confirming = record, True
        job.url = confirm.confirming_request(job.url, record)
        job.host.sleeping += 1  # the host is not forgotten meanwhile
        self.held.append(job)
        self._unconfirmed.add(job)
        if len(self.held) >= confirm.HOLD_LIMIT:
            self.release()
        return None

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
