"""The run's wake-ups on its clock: URLs parked before a retry, paced hosts, the overall rate.

A URL waiting to retry sits on a timer, not in a task, and holds no slot at all; a paced host
leaves the ready line until its next start is allowed. Every wake-up ends in the run's pump.
"""

from __future__ import annotations

from collections.abc import Callable

from afetch._clock import Clock, TimerHandle
from afetch.schedule.hosts import Host
from afetch.schedule.job import Job


class Timers:
    """Timers on ``clock`` that hand a job or a host back to the run, then ``pump``."""

    __slots__ = ("_clock", "_enqueue", "_mark_ready", "_pacer_wake", "_pump", "_timers")

    def __init__(
        self,
        clock: Clock,
        *,
        enqueue: Callable[[Job], None],
        mark_ready: Callable[[Host], None],
        pump: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._enqueue = enqueue
        self._mark_ready = mark_ready
        self._pump = pump
        self._timers: set[TimerHandle] = set()
        self._pacer_wake: TimerHandle | None = None

    def park(self, job: Job, wait: float) -> None:
        """Queue ``job`` again after ``wait`` seconds (no task, no slot meanwhile)."""
        job.host.sleeping += 1

        def wake() -> None:
            self._timers.discard(handle)
            job.host.sleeping -= 1
            self._enqueue(job)
            self._pump()

        handle = self._clock.call_later(wait, wake)
        self._timers.add(handle)

    def wake_host_at(self, host: Host, when: float) -> None:
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

    def wake_pump_at(self, when: float) -> None:
        """Pump again at ``when``, when the overall ``rate`` allows the next start."""
        if self._pacer_wake is not None:
            return

        def wake() -> None:
            self._pacer_wake = None
            self._pump()

        self._pacer_wake = self._clock.call_at(when, wake)

    def close(self) -> None:
        """Pending wake-ups are dropped."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._pacer_wake is not None:
            self._pacer_wake.cancel()
