"""Host affinity: the slot an attempt frees goes to its host's next waiting URL.

The engine keeps a finished attempt's connection idle in its pool; started at once, the host's
next URL reuses it: no DNS query, no TCP or TLS handshake (the handshake is most of a client's
CPU per URL over HTTPS). Given to another host instead, the slot opens a new connection, and on
a shuffled list of many hosts the idle one is evicted before its host comes back. So the run
reads far enough ahead to find a host's next URL (:func:`lookahead`) and, when an attempt ends,
starts that URL first (:meth:`ByHost.next_of`, :func:`next_here`); otherwise the slot goes as
before (input order, or hosts in turn with per-host options).

No URL starves: a URL is taken out of turn only if it was read fewer than ``reach`` URLs after
the one whose turn it is (the head of the line). Those are finitely many, each tried a bounded
number of times, so after them the freed slots go to the head again.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TYPE_CHECKING

from afetch.schedule.job import Job

if TYPE_CHECKING:
    from afetch.schedule.hosts import Host

#: URLs that may wait (parked behind a busy or paced host, sleeping before a retry, or read
#: ahead) per unit of concurrency.
LOOKAHEAD_PER_SLOT = 4
#: ... and at least this many, whatever the concurrency: enough to find a host's next URL on
#: shuffled lists of thousands of hosts (figures: docs/performance.md, Connection reuse). A
#: waiting URL costs about 0.4 KB besides its text.
LOOKAHEAD_MIN = 8000


def lookahead(capacity: int, *, prefetch: bool) -> int:
    """How many URLs may wait in a run of ``capacity`` slots. ``prefetch`` (``--cache``): the
    cache keeps answers for the last few batches read ahead only, so the bound stays per slot.

    >>> lookahead(50, prefetch=False), lookahead(50, prefetch=True), lookahead(5000, prefetch=False)
    (8000, 200, 20000)
    """
    per_slot = LOOKAHEAD_PER_SLOT * capacity
    return per_slot if prefetch else max(per_slot, LOOKAHEAD_MIN)


def host_of(url: str) -> str:
    """The grouping key of ``url``: its scheme and authority, by slicing (a key only groups
    URLs for reuse; a malformed URL gets some key, and its attempt says what is wrong).

    >>> host_of("https://a.test:8443/x/y?z"), host_of("http://a.test")
    ('https://a.test:8443', 'http://a.test')
    """
    end = url.find("/", 8)  # past "https://" and the host's first character
    return url if end < 0 else url[:end]


#: How far past the head of the queue a free slot looks for a URL of a host with no attempt in
#: flight (whose own freed slot would otherwise take it, on its connection): a few loop steps.
SCAN = 32


class Line:
    """One host's URLs in the shared queue, in queue order, and its attempts in flight."""

    __slots__ = ("jobs", "key", "running")

    def __init__(self, key: str) -> None:
        self.key = key
        self.jobs: deque[Job] = deque()
        self.running = 0


class ByHost:
    """Without per-host options: the URLs waiting in the shared host's queue (input order), by
    host as well (:class:`Line`, ``job.line``). A URL started out of that order stays in the
    queue, counted in its ``stale``; the queue skips it when it comes to the front
    (:meth:`fresh`). A line is kept while it has URLs queued or in flight.

    Each line holds its host's queued URLs in queue order, so the queue's next fresh URL is the
    front of its line.
    """

    __slots__ = ("_lines", "reach")

    def __init__(self, reach: int) -> None:
        self._lines: dict[str, Line] = {}
        self.reach = reach

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, job: Job, key: str) -> None:
        """``job`` was queued (read, or back from a retry's wait)."""
        line = self._lines.get(key)
        if line is None:
            self._lines[key] = line = Line(key)
        line.jobs.append(job)
        job.line = line

    def ended(self, line: Line) -> None:
        """An attempt of ``line``'s host ended, and its slot did not take the next."""
        if not line.running and not line.jobs:
            del self._lines[line.key]

    def next_of(self, line: Line, queue: deque[Job]) -> Job | None:
        """The URL to start in a slot ``line``'s host freed: its next, taken off ``queue``
        (out of order, if it is not the front); None: the slot goes to the queue's front."""
        job = line.jobs[0]
        head = queue[0]  # the queue holds the line's URLs
        if job is head:
            queue.popleft()
        elif job.index >= head.index + self.reach:
            return None  # read too far past the head (see above)
        else:
            job.stale += 1
        line.jobs.popleft()
        line.running += 1
        return job

    def take(self, job: Job, queue: deque[Job], running: int) -> Job:
        """The URL to start in a free slot: ``job``, just taken off ``queue``'s front, or, if
        its host has an attempt in flight (whose slot will take it), the first URL a little
        further of a host with none, if there are such hosts (more lines than attempts)."""
        line = job.line
        if line.running and len(self._lines) > running:
            for other in islice(queue, SCAN):
                ahead = other.line
                if not ahead.running and not other.stale and ahead.jobs[0] is other:
                    queue.appendleft(job)
                    other.stale += 1
                    job, line = other, ahead
                    break
        line.jobs.popleft()
        line.running += 1
        return job

    @staticmethod
    def fresh(job: Job, queue: deque[Job]) -> Job | None:
        """``job`` just taken off ``queue``'s front, or if it started out of order, the next
        URL that did not (None: none is left)."""
        while job.stale:
            job.stale -= 1
            if not queue:
                return None
            job = queue.popleft()
        return job


def next_here(host: Host, ready: deque[Host], reach: int) -> Job | None:
    """With per-host options: ``host``'s next URL, taken off its queue to start in the slot
    its attempt freed, unless the host may not start one now or it is a later host's turn."""
    queue = host.queue
    if not queue or host.down or host.pacer is not None:
        return None
    if host.limit is not None and host.in_flight >= host.limit:
        return None
    job: Job = queue[0]
    if ready:
        head = ready[0]
        if head is host:
            return None  # its turn anyway
        if head.queue and job.index >= head.queue[0].index + reach:
            return None
    return queue.popleft()
