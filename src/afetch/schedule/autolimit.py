"""``--per-host auto``: how many requests one host gets in flight, learned from its answers.

Pure policy, no I/O and no clock: the scheduler reports each finished attempt and reads
:attr:`AutoLimit.limit`. The rule is TCP's additive increase, multiplicative decrease, with
requests in flight in place of a congestion window:

* start at :data:`START` (2) in flight;
* after a *window* of successes (as many as the current limit: one "round trip" of the host's
  slots), add one, if every response of the window came within :data:`LATENCY_FACTOR` (2x) the
  host's best latency; a slower success restarts the window (the host is queueing);
* on 429, 503, a timeout or a reset, halve (at least 1) and restart the window. Only answers
  to requests started since the last halving count: the requests already in flight when the
  limit fell were sent under the old limit, and one overload must not halve it ten times;
* never above ``ceiling`` (``-c``).

Other answers (404, 500, a refused connection, ...) neither raise nor lower the limit.
"""

from __future__ import annotations

from afetch._errors import ErrorTrait, error_types_with

#: In flight per host at first, as browsers' and curl's small per-host pools.
START = 2
#: A success slower than this multiple of the host's best latency does not count towards a raise.
LATENCY_FACTOR = 2.0
#: The best latency is taken as at least this (ms): below ~10 ms (loopback, a LAN) differences
#: are the scheduler's and the machine's jitter, not the host queueing our requests.
MIN_BEST_MS = 5.0
#: Statuses that say "too many of you": halve.
OVERLOAD_STATUSES = frozenset({429, 503})
#: Error types that say the host could not keep up: halve (``ErrorTrait.OVERLOAD``).
OVERLOAD_ERRORS = error_types_with(ErrorTrait.OVERLOAD)


class AutoLimit:
    """One host's adaptive limit.

    >>> auto = AutoLimit(ceiling=10)
    >>> auto.limit
    2
    >>> for _ in range(2): auto.finished(status=200, elapsed_ms=10.0, epoch=auto.epoch)
    >>> auto.limit  # a window of 2 fast successes: one more
    3
    >>> auto.finished(status=503, elapsed_ms=5.0, epoch=auto.epoch); auto.limit
    1
    """

    __slots__ = ("best_ms", "ceiling", "epoch", "limit", "requests", "successes")

    def __init__(self, *, ceiling: int, start: int = START) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = max(1, min(start, self.ceiling))
        #: Fastest success seen, in milliseconds (None until the first).
        self.best_ms: float | None = None
        #: Fast successes in the current window.
        self.successes = 0
        #: Bumped at each halving; a request carries the epoch it started in.
        self.epoch = 0
        #: Attempts finished for this host (for the summary's busiest hosts).
        self.requests = 0

    def finished(
        self,
        *,
        status: int | None = None,
        error_type: str | None = None,
        elapsed_ms: float = 0.0,
        epoch: int = 0,
    ) -> None:
        """Account one finished attempt that started in ``epoch``."""
        self.requests += 1
        if error_type in OVERLOAD_ERRORS or (error_type is None and status in OVERLOAD_STATUSES):
            if epoch == self.epoch:  # sent under the current limit: a fresh sign of overload
                self.limit = max(1, self.limit // 2)
                self.successes = 0
                self.epoch += 1
            return
        if error_type is not None or status is None or status >= 500:
            return  # says nothing about how many requests the host takes
        if self.best_ms is None or elapsed_ms < self.best_ms:
            self.best_ms = elapsed_ms
        if elapsed_ms > LATENCY_FACTOR * max(self.best_ms, MIN_BEST_MS):
            self.successes = 0  # queueing: latency grows with what we send, hold the limit
            return
        self.successes += 1
        if self.successes >= self.limit:
            self.successes = 0
            self.limit = min(self.ceiling, self.limit + 1)
