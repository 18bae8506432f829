"""Running totals for progress and the summary, in constant memory whatever the list size."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence

from afetch._record import Record

CLASSES = ("2xx", "3xx", "4xx", "5xx", "errors")
# Latencies go into log-spaced buckets 2% wide: percentiles stay within 2% at any run length.
_BUCKET_GROWTH = math.log(1.02)
_floor, _log = math.floor, math.log


#: The class of a status by its hundreds (1xx counts as 2xx, 6xx and above as 5xx).
_CLASS_BY_HUNDREDS = ("2xx", "2xx", "2xx", "3xx", "4xx", "5xx")


def status_class(record: Record) -> str:
    if record.error is not None or record.status is None:
        return "errors"
    return _CLASS_BY_HUNDREDS[min(max(record.status // 100, 0), 5)]


class LatencyHistogram:
    """Approximate percentiles from bounded memory.

    >>> h = LatencyHistogram()
    >>> for ms in range(1, 101): h.add(float(ms))
    >>> round(h.percentile(50)), h.max
    (50, 100.0)
    """

    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.add_many((ms,))

    def add_many(self, values: Sequence[float]) -> None:
        if not values:
            return
        # The buckets counted in C (Counter.update of a list), the largest found by max().
        self._buckets.update(
            [_floor(_log(ms if ms > 0.001 else 0.001) / _BUCKET_GROWTH) for ms in values]
        )
        self.count += len(values)
        top = max(values)
        if top > self.max:
            self.max = top

    def percentile(self, p: float) -> float:
        return self.percentiles(p)[0]

    def percentiles(self, *ps: float) -> list[float]:
        """Several percentiles in one pass; safe to call from another thread while ``add`` runs.

        >>> h = LatencyHistogram()
        >>> for ms in range(1, 101): h.add(float(ms))
        >>> [round(v) for v in h.percentiles(50, 90, 99)]
        [50, 91, 100]
        """
        # A copy first: the display thread reads while the loop thread adds (a C-level dict copy
        # is atomic under the GIL; iterating the live Counter is not).
        buckets = sorted(dict(self._buckets).items())
        count, top = sum(n for _, n in buckets), self.max
        if not count:
            return [0.0 for _ in ps]
        # One walk over the buckets for all the ranks, smallest first.
        wanted = sorted((max(1, math.ceil(count * p / 100)), i) for i, p in enumerate(ps))
        out = [top] * len(ps)
        seen, next_rank = 0, 0
        for bucket, n in buckets:
            seen += n
            while next_rank < len(wanted) and seen >= wanted[next_rank][0]:
                # Report the bucket's upper edge, capped by the true maximum.
                out[wanted[next_rank][1]] = min(math.exp((bucket + 1) * _BUCKET_GROWTH), top)
                next_rank += 1
            if next_rank == len(wanted):
                break
        return out


class Stats:
    """Totals updated once per record; read by the progress display and the summary.

    ``add`` runs once a record is written (on the writer thread), so the summary never counts a
    record that did not reach the output.
    """

    def __init__(self, *, total: int | None = None) -> None:
        self.total = total
        self.handed = 0  # records handed to the writer thread (by the event loop)
        self.done = 0  # records written (counted by the writer thread, after the write)
        self.ok = 0
        #: URLs a resumed run skipped (journaled by an earlier run of it), and how many were ok.
        self.earlier = 0
        self.earlier_ok = 0
        self.bytes = 0
        self.by_class: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()
        self.started = time.monotonic()
        self.finished: float | None = None

    def add(self, record: Record) -> None:
        self.add_many((record,))

    def add_many(self, records: Sequence[Record]) -> None:
        """Count ``records`` (the writer thread's batch): status_class and Record.ok, inlined
        (one table of classes). The usual record (a status, no error, no verdict) is counted by
        its status, each status of the batch once (a batch has few)."""
        by_class, errors = self.by_class, self.errors
        ok = 0
        usual = [r.status for r in records if r.error is None and r.verdict is None]
        statuses = Counter(usual)  # status -> how many, counted in C
        if len(usual) < len(records):
            for record in records:
                error, status, verdict = record.error, record.status, record.verdict
                if error is None and verdict is None:
                    continue  # counted above
                if verdict is not None:  # --accept, --accept-timeouts, --ok-if decided
                    ok += verdict
                if error is not None:
                    by_class["errors"] += 1
                    errors[error.type] += 1
                elif status is None:
                    by_class["errors"] += 1
                else:
                    by_class[_CLASS_BY_HUNDREDS[min(max(status // 100, 0), 5)]] += 1
        for status, count in statuses.items():
            if status is None:
                by_class["errors"] += count
            else:
                ok += count if status < 400 else 0
                by_class[_CLASS_BY_HUNDREDS[min(max(status // 100, 0), 5)]] += count
        # Every URL's time, failures included: a timed-out URL is the slowest of all.
        self.latency.add_many([r.elapsed_ms for r in records])
        self.bytes += sum([r.bytes for r in records])
        self.ok += ok
        self.done += len(records)  # last: the display reads it as "written and counted"

    def finish(self) -> None:
        self.finished = time.monotonic()

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if self.total is None or not self.done:
            return None
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None
