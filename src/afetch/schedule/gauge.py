"""A read-only view of the scheduler for the progress display: what runs, what waits, since when.

The scheduler updates a :class:`Gauge` only when one is passed to :func:`afetch.fetch`; without
one it pays a single ``is not None`` test per attempt started and per attempt finished. With one,
each attempt costs a ``time.monotonic()`` call, a dict insert and a dict delete (well under a
microsecond), and the display reads the scheduler's own counters: nothing is counted twice.

The display reads from another thread (Rich's refresh thread, or the plain-progress thread):
ints are read as they are, and the dict of running attempts is copied (one C-level call, atomic
under the GIL) before it is iterated.
"""

from __future__ import annotations

import heapq
import operator
import time
from collections.abc import Callable


def _nothing() -> tuple[int, int]:
    return 0, 0


class Gauge:
    """Attempts in flight (never more than ``concurrency``), URLs waiting, and the oldest attempts.

    >>> gauge = Gauge()
    >>> gauge.bind(lambda: (2, 5))
    >>> job_a, job_b = object(), object()
    >>> gauge.start(job_a, "http://a.test/", now=10.0)
    10.0
    >>> gauge.start(job_b, "http://b.test/", now=11.0)
    11.0
    >>> gauge.in_flight, gauge.waiting
    (2, 5)
    >>> gauge.oldest(1, now=12.5)
    [('http://a.test/', 2.5)]
    >>> gauge.end(job_a)
    >>> gauge.oldest(5, now=12.5)
    [('http://b.test/', 1.5)]
    >>> gauge.start(job_a, "http://a.test/", now=12.0, first=10.0)  # a retry: aged from 10.0
    10.0
    >>> gauge.oldest(5, now=12.5)
    [('http://a.test/', 2.5), ('http://b.test/', 1.5)]
    """

    def __init__(self, *, attempt_s: float | None = None) -> None:
        """``attempt_s``: the longest one attempt may take (``--timeout``), for the ETA."""
        self._attempt_s = attempt_s
        self._counts: Callable[[], tuple[int, int]] = _nothing
        # URL key -> when its attempts left may be over (monotonic), for URLs being retried.
        self._retrying: dict[object, float] = {}
        # attempt key -> (url, start of the URL's first attempt), for the attempts running.
        self._started: dict[object, tuple[str, float]] = {}

    def bind(self, counts: Callable[[], tuple[int, int]]) -> None:
        """The scheduler hands over a reader of (attempts running, URLs waiting)."""
        self._counts = counts

    def start(
        self, key: object, url: str, *, now: float | None = None, first: float | None = None
    ) -> float:
        """An attempt starts; ``first``: when the URL's first attempt did (for a retry).

        Returns the first attempt's start, for the caller to pass on the URL's next attempt:
        ages count from it, so a URL retried after timeouts shows its whole wait.
        """
        if first is None:
            first = time.monotonic() if now is None else now
        self._started[key] = (url, first)
        return first

    def end(self, key: object) -> None:
        self._started.pop(key, None)
        self._retrying.pop(key, None)

    def retry(self, key: object, *, waits: float, attempts: int, now: float | None = None) -> None:
        """The URL's attempt failed and it will be tried again, ``attempts`` times at most,
        after ``waits`` seconds of backoff in all: it may take that long plus the attempts.
        Without a timeout, an attempt has no bound to count."""
        if self._attempt_s is None:
            return
        now = time.monotonic() if now is None else now
        self._retrying[key] = now + waits + attempts * self._attempt_s

    def tail(self, *, now: float | None = None) -> float:
        """Seconds the URLs being retried may still take: waits and their attempts left, each
        up to the timeout. A run cannot end sooner, whatever the rate says.

        >>> gauge = Gauge(attempt_s=2.0)
        >>> gauge.retry("job", waits=0.5, attempts=2, now=10.0)
        >>> gauge.tail(now=11.0)
        3.5
        >>> gauge.end("job"); gauge.tail(now=11.0)
        0.0
        """
        now = time.monotonic() if now is None else now
        ends = self._retrying.copy().values()  # the loop thread mutates it while we read
        return max(0.0, max(ends, default=now) - now)

    @property
    def in_flight(self) -> int:
        """Attempts running now: at most ``concurrency``."""
        return self._counts()[0]

    @property
    def waiting(self) -> int:
        """URLs read but not running: parked behind a busy or paced host, or waiting to retry."""
        return self._counts()[1]

    def oldest(self, count: int, *, now: float | None = None) -> list[tuple[str, float]]:
        """The ``count`` attempts running longest, oldest first, as (url, age in seconds)."""
        if count <= 0:
            return []
        now = time.monotonic() if now is None else now
        started = self._started.copy()  # the loop thread mutates it while we read
        # A retry is inserted afresh but dates from its first attempt: order by that.
        oldest = heapq.nsmallest(count, started.values(), key=operator.itemgetter(1))
        return [(url, now - start) for url, start in oldest]
