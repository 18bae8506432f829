"""The scheduler's one seam to the fetcher: where a URL is handed over and its record comes back.

Everything the scheduler asks of :class:`afetch.attempt.fetcher.Fetcher` is settled here: how
an attempt runs, on callbacks (:attr:`Dispatch.direct`: ``Fetcher.start``, for plain URLs when
the fetcher allows it; the run calls it itself, no hop per URL) or in a worker task (``await
Fetcher.attempt``); the ``--cache`` look-ahead (``Fetcher.prefetch``) and the engine's look-ahead
of host names (``Fetcher.resolve_ahead``); the record of a URL never
tried (``Fetcher.unattempted``); and the pacing of the requests the fetcher adds of its own
(``Fetcher.pace_extra``). The run (:class:`afetch.schedule.run.Run`) starts a job and hears
"this job's attempt ended with this record" (and counts the attempt in it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from afetch._record import FetchError, Record
from afetch.attempt.fetcher import Fetcher, ServerHints
from afetch.schedule.job import Job

#: What the run does when an attempt ended: the job, its record, the last head's pacing hints.
Attempted = Callable[[Job, Record, ServerHints | None], None]


class Dispatch:
    """Attempts in flight: on the fetcher's callbacks, or in at most ``capacity`` worker tasks.

    Attempts that need a coroutine run in long-lived workers, not a task each: a worker that
    finishes an attempt usually finds the next job already queued by the pump that ran on its
    way out, so a job changes hands without a task, a future or a loop turn.
    """

    __slots__ = (
        "_attempted",
        "_fetcher",
        "_group",
        "_idle_workers",
        "_jobs",
        "_retired",
        "_workers",
        "capacity",
        "direct",
        "prefetch",
        "resolve_ahead",
    )

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        group: asyncio.TaskGroup,
        capacity: int,
        attempted: Attempted,
        pace_extra: Callable[[str], float] | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._group = group
        self.capacity = capacity
        self._attempted = attempted
        #: --cache's look-ahead: told of each plain URL read, before its attempt starts (the run
        #: calls it itself: one test, no call, per URL without --cache).
        self.prefetch = getattr(fetcher, "prefetch", None)
        #: The engine's look-ahead of host names: told the origin of each URL read (the run
        #: calls it itself too).
        self.resolve_ahead = getattr(fetcher, "resolve_ahead", None)
        if pace_extra is not None and hasattr(fetcher, "pace_extra"):
            fetcher.pace_extra(pace_extra)  # requests of its own (--include soft404's canaries)
        #: Plain URLs go to the fetcher's callback path when it has one (no worker task): the
        #: run calls ``direct(url, done, job, target)`` itself; None: every attempt goes to
        #: :meth:`start`.
        self.direct = fetcher.start if fetcher.counts else None
        #: Jobs handed to the workers, and workers waiting for one (see _work).
        self._jobs: deque[Job] = deque()
        self._idle_workers: list[asyncio.Future[None]] = []
        self._workers = 0
        self._retired = False

    def start(self, job: Job) -> None:
        """Start an attempt at ``job`` in a worker task (a request object, or any URL when
        :attr:`direct` is None); the run hears of its end through ``attempted``."""
        self._jobs.append(job)
        if self._idle_workers:
            self._idle_workers.pop().set_result(None)
        elif self._workers < self.capacity:
            self._workers += 1
            self._group.create_task(self._work())

    def unattempted(self, job: Job, error: FetchError) -> Record:
        """The record of ``job`` given up before any attempt."""
        return self._fetcher.unattempted(job.url, error)

    async def _work(self) -> None:
        jobs = self._jobs
        attempt = self._fetcher.attempt
        while True:
            if jobs:
                job = jobs.popleft()
                record, hints = await attempt(job.url, job.target)
                self._attempted(job, record, hints)
            elif self._retired:
                return
            else:
                idle = asyncio.get_running_loop().create_future()
                self._idle_workers.append(idle)
                await idle

    def retire(self) -> None:
        """Everything is done: idle workers end (so the task group can close)."""
        self._retired = True
        for idle in self._idle_workers:
            if not idle.done():
                idle.set_result(None)
        self._idle_workers.clear()
