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


class ByHost:
    """Without per-host options: the URLs waiting in the shared host's queue (input order), by
    host as well. A URL started out of that order stays in the queue, counted in its
    ``stale``; the queue skips it when it comes to the front (:meth:`fresh`).

    Each host's line holds its queued URLs in queue order, so the queue's next fresh URL is
    the front of its host's line (:meth:`started` takes it off).
    """

    __slots__ = ("_lines", "reach")

    def __init__(self, reach: int) -> None:
        self._lines: dict[str, deque[Job]] = {}
        self.reach = reach

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, job: Job) -> None:
        line = self._lines.get(job.key)  # type: ignore[arg-type]
        if line is None:
            self._lines[job.key] = line = deque()  # type: ignore[index]
        line.append(job)

    def started(self, job: Job) -> None:
        """``job``, the queue's front, starts."""
        key = job.key
        line = self._lines[key]  # type: ignore[index]
        line.popleft()
        if not line:
            del self._lines[key]  # type: ignore[arg-type]

    def next_of(self, ended: Job, queue: deque[Job]) -> Job | None:
        """The URL to start in the slot ``ended`` freed: its host's next, taken out of
        ``queue``'s order; None: the slot goes to the queue's front as usual."""
        line = self._lines.get(ended.key)  # type: ignore[arg-type]
        if line is None:
            return None
        job = line[0]
        head = queue[0]  # the queue holds the line's URLs
        if job is head or job.index >= head.index + self.reach:
            return None  # its turn anyway, or read too far past the head's (see above)
        line.popleft()
        if not line:
            del self._lines[ended.key]  # type: ignore[arg-type]
        job.stale += 1
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
