"""Host affinity: the slot an attempt frees goes to its host's next waiting URL.

The engine keeps a finished attempt's connection idle in its pool; started at once, the host's
next URL reuses it: no DNS query, no TCP or TLS handshake (the handshake is most of a client's
CPU per URL over HTTPS). Given to another host instead, the slot opens a new connection, and on
a shuffled list of many hosts the idle one is evicted before its host comes back. So the run
reads far enough ahead to find a host's next URL (:func:`lookahead`) and, when an attempt ends,
starts that URL first (:meth:`Affinity.follow`); otherwise the slot goes as before (input
order, or hosts in turn with per-host options).

No URL starves: a URL is taken out of turn only if it was read fewer than ``reach`` URLs after
the one whose turn it is (the head of the line). Those are finitely many, each tried a bounded
number of times, so after them the freed slots go to the head again. A free slot never passes
over the head, so a slow host's URLs do not wait for one another: its next URL runs beside the
first once its turn comes (passing over a busy host's URL for an idle host's saved no
connections in the lab, and chained a slow host's URLs into one long tail).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from afetch.schedule.job import Job, Line

if TYPE_CHECKING:
    from afetch.schedule.hosts import Host

#: URLs that may wait (parked behind a busy or paced host, sleeping before a retry, or read
#: ahead) per unit of concurrency.
LOOKAHEAD_PER_SLOT = 4
#: ... and at least this many, whatever the concurrency: enough to find a host's next URL on
#: shuffled lists of thousands of hosts (figures: docs/performance.md, "Connection reuse: a
#: host's next URL takes its freed slot"). A waiting URL costs about 0.4 KB besides its text.
LOOKAHEAD_MIN = 20_000
#: ... widened once to this many (about 20 MB) when the URLs waiting span more than one host
#: per ``HOSTS_TO_WIDEN`` of them (a list over many hosts, a few URLs each, far apart): a host's
#: next URL is then often further ahead than ``LOOKAHEAD_MIN`` (figures: docs/performance.md,
#: "Names looked up ahead"). A list of one host never widens; nor does ``--cache``'s.
LOOKAHEAD_WIDE = 50_000
HOSTS_TO_WIDEN = 4
#: ... and at least this many hosts.
WIDEN_HOSTS_MIN = 1_000


def lookahead(capacity: int, *, prefetch: bool) -> int:
    """How many URLs may wait in a run of ``capacity`` slots. ``prefetch`` (``--cache``): the
    cache keeps answers for the last few batches read ahead only, so the bound stays per slot.

    >>> lookahead(50, prefetch=False), lookahead(50, prefetch=True), lookahead(9000, prefetch=False)
    (20000, 200, 36000)
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


class Affinity:
    """A run's host affinity. Without per-host options, the URLs waiting in the shared host's
    queue (input order) are kept by host as well (:class:`Line`, ``job.line``); a URL started
    out of that order stays in the queue, counted in its ``stale``, and the queue skips it when
    it comes to the front (:meth:`take`). Each line holds its host's queued URLs in queue
    order, so the queue's next fresh URL is the front of its line; a line is kept while its
    host has URLs queued or in flight. With per-host options, a host's queue is its line.

    Memory: the stale places are URLs taken within ``reach`` of the front, so the queue holds
    at most about ``reach`` of them besides the URLs waiting (and sheds them as its front
    reaches them).
    """

    __slots__ = ("_lines", "_queue", "_ready", "_start", "_widen", "_widen_at", "freed", "reach")

    def __init__(
        self,
        reach: int,
        *,
        queue: deque[Job],
        ready: deque[Host],
        start: Callable[[Job], None],
        widen: Callable[[int], None] | None = None,
    ) -> None:
        self._lines: dict[str, Line] = {}
        self.reach = reach
        #: Told the wider reach, once, when as many hosts have lines (None: never widens).
        self._widen = widen
        widens = widen is not None and reach < LOOKAHEAD_WIDE
        self._widen_at = max(reach // HOSTS_TO_WIDEN, WIDEN_HOSTS_MIN) if widens else -1
        self._queue = queue  # the shared host's
        self._ready = ready
        self._start = start
        #: Attempts ended while the run's records waited to be taken: their slots follow their
        #: hosts once records are taken (the run starts nothing in between).
        self.freed: deque[Job] = deque()

    def add(self, job: Job, key: str) -> None:
        """``job`` was queued in the shared queue (read, or back from a retry's wait)."""
        line = self._lines.get(key)
        if line is None:
            self._lines[key] = line = Line(key)
            if len(self._lines) == self._widen_at:
                self._widen_at = -1
                self.reach = LOOKAHEAD_WIDE
                self._widen(LOOKAHEAD_WIDE)  # type: ignore[misc]
        line.jobs.append(job)
        job.line = line

    def ended(self, job: Job, *, paced: bool, held: bool, answered: bool) -> None:
        """``job``'s attempt ended: its host's next URL takes the slot, unless the overall rate
        says when a slot is taken (``paced``) or records wait to be taken (``held``: later).

        Only an attempt that got a whole response (``answered``) leaves a connection to reuse:
        after a connect timeout or a body cut off, the host's next URL waits its turn as before,
        so a dead or stalling host's URLs fail side by side, not one after another."""
        line = job.line
        if line is not None:
            line.running -= 1
            if not line.jobs:
                if not line.running:
                    del self._lines[line.key]
                return
        elif not job.host.queue:
            return
        if not answered:
            return
        if held:
            self.freed.append(job)
        elif not paced:
            self.follow(job)

    def follow(self, ended: Job) -> None:
        """Start the URL that takes the slot ``ended`` freed: its host's next, if it may."""
        line = ended.line
        if line is None:
            job = next_here(ended.host, self._ready, self.reach)
            if job is not None:
                self._start(job)
            return
        if not line.jobs:
            return
        job = line.jobs[0]
        queue = self._queue
        head = queue[0]  # the queue holds the line's URLs
        while head.stale:  # the front's places of URLs started out of turn go (memory)
            head.stale -= 1
            queue.popleft()
            head = queue[0]
        if job is head:
            queue.popleft()
        elif job.index >= head.index + self.reach:
            return  # read too far past the head (see above)
        else:
            job.stale += 1
        line.jobs.popleft()
        line.running += 1
        self._start(job)

    def take(self, job: Job) -> Job | None:
        """The shared queue's URL to start in a free slot: ``job``, just taken off its front,
        or if that started out of order, the next that did not (None: none is left)."""
        queue = self._queue
        while job.stale:
            job.stale -= 1
            if not queue:
                return None
            job = queue.popleft()
        line = job.line
        assert line is not None
        line.jobs.popleft()
        line.running += 1
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
