"""What the reports say about a run: counted per record on the writer thread, summed up once.

:class:`Tally` adds what the run's :class:`~afetch._stats.Stats` does not count (the same
records, on the same thread, right after them): ``change`` values (records carry them with
``--history``), statuses, the latency histogram Prometheus wants, the slowest URLs, the hosts
with the most URLs not ok and the first of those URLs. Everything is bounded whatever the list
size. :func:`summarize` joins both into the one object every report is written from (the
``json`` report is that object as it is; docs/summary.schema.json describes it).
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any

from afetch._record import Record
from afetch._redact import mask_url, redact
from afetch._stats import CLASSES, Stats
from afetch._version import __version__
from afetch.schedule.hosts import host_key

#: Upper bounds (seconds) of the latency histogram's buckets, +Inf aside: Prometheus' default
#: buckets, stretched to the minutes a retried URL can take.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BUCKETS_MS = tuple(bound * 1000 for bound in LATENCY_BUCKETS_S)
#: A latency's bucket: the first whose bound is not below it (the last one: +Inf).
_BUCKET_OF = partial(bisect_left, _BUCKETS_MS)
#: How many slowest URLs, worst hosts and URLs not ok the summary lists.
SLOWEST = 10
WORST_HOSTS = 10
FAILURES = 50
#: Hosts with URLs not ok counted at most; past it the least failing half is dropped (their
#: counts restart if they fail again), so a list of a million dead hosts stays small.
_HOST_MEMORY = 10_000
PERCENTILES = (50, 90, 95, 99)


def change_of(record: Record) -> str | None:
    """The record's ``change`` (``--history``: new, same, broke, ...), or None without it.

    >>> change_of(Record(url="u", watch=("broke", 1, "t"))), change_of(Record(url="u"))
    ('broke', None)
    """
    watch = record.watch
    return None if watch is None else watch[0]


_ELAPSED = attrgetter("elapsed_ms")
_STATUS = attrgetter("status")
_WATCH = attrgetter("watch")


#: A plain ``http(s)://host[:port]`` start, which needs no urlsplit (junit asks for every URL).
_PLAIN_ORIGIN = re.compile(r"(https?)://([a-z0-9.-]+)(?::([0-9]{1,5}))?(?=[/?#]|$)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (never its user name or password), or ``(no host)``:
    the scheduler's host key (afetch.schedule.hosts.host_key), written out.

    >>> host_of("https://ann:pw@Example.org/a"), host_of("not a url")
    ('https://example.org:443', '(no host)')
    >>> host_of("http://a.test:0/"), host_of("http://a.test:8080?q"), host_of("http://[::1]:81/")
    ('http://a.test:80', 'http://a.test:8080', 'http://[::1]:81')
    """
    plain = _PLAIN_ORIGIN.match(url)
    if plain is not None:
        scheme, host, port = plain.groups()
        number = int(port) if port else 0
        if number <= 65535:
            return f"{scheme}://{host}:{number or _DEFAULT_PORTS[scheme]}"
    key = host_key(url)
    if key is None:
        return "(no host)"
    scheme, host, port = key
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _failure(record: Record) -> dict[str, Any]:
    error = record.error
    return {
        "url": mask_url(record.url),
        "status": record.status,
        "error": None if error is None else error.type,
        "message": None if error is None else redact(error.message),
        "change": change_of(record),
    }


class Tally:
    """Counts for the reports, fed the records once they are written (``add_many``)."""

    def __init__(self) -> None:
        self.changes: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        #: Records per latency bucket; the last one is +Inf.
        self.buckets = [0] * (len(_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0
        self._slowest: list[tuple[float, int, Record]] = []  # a min-heap of the slowest
        self._seen = 0
        self.not_ok_hosts: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []

    def add_many(self, records: Iterable[Record]) -> None:
        """Count a batch: by whole-batch steps in C (Counter, map, bisect), so the Python
        per record is a few list items; a URL not ok as the run judged it (Record.ok)."""
        batch = records if isinstance(records, list) else list(records)
        if not batch:
            return
        elapsed = list(map(_ELAPSED, batch))
        self.latency_sum_ms += sum(elapsed)
        buckets = self.buckets
        for index, count in Counter(map(_BUCKET_OF, elapsed)).items():
            buckets[index] += count
        slowest = self._slowest
        if len(slowest) < SLOWEST or max(elapsed) > slowest[0][0]:
            for seen, (ms, record) in enumerate(zip(elapsed, batch, strict=True), self._seen + 1):
                if len(slowest) < SLOWEST:
                    heapq.heappush(slowest, (ms, seen, record))
                elif ms > slowest[0][0]:
                    heapq.heapreplace(slowest, (ms, seen, record))
        self._seen += len(batch)
        statuses = self.statuses
        statuses.update(map(_STATUS, batch))
        statuses.pop(None, None)  # type: ignore[call-overload]
        self.changes.update(watch[0] for watch in map(_WATCH, batch) if watch is not None)
        for record in batch:
            if not record.ok:
                self._not_ok(record)

    def _not_ok(self, record: Record) -> None:
        hosts = self.not_ok_hosts
        hosts[host_of(record.url)] += 1
        if len(hosts) > _HOST_MEMORY:
            kept = hosts.most_common(_HOST_MEMORY // 2)
            hosts.clear()
            hosts.update(dict(kept))
        if len(self.failures) < FAILURES:
            self.failures.append(_failure(record))

    def slowest(self) -> list[dict[str, Any]]:
        return [
            {
                "url": mask_url(record.url),
                "elapsed_ms": round(elapsed, 1),
                "status": record.status,
                "error": None if record.error is None else record.error.type,
            }
            for elapsed, _, record in sorted(self._slowest, key=lambda item: (-item[0], item[1]))
        ]


def summarize(
    stats: Stats,
    tally: Tally,
    *,
    started_at: str,
    finished_at: str,
    exit_code: int,
    signal: str | None,
) -> dict[str, Any]:
    """The run as one JSON-ready object (docs/summary.schema.json); ``started_at`` and
    ``finished_at`` as afetch._timestamps writes them, ``signal`` the name of the signal that
    stopped the run."""
    latency = stats.latency
    values = latency.percentiles(*PERCENTILES) if latency.count else [0.0] * len(PERCENTILES)
    percentiles = {f"p{p}": round(v, 1) for p, v in zip(PERCENTILES, values, strict=True)}
    percentiles["max"] = round(latency.max, 1)
    duration = stats.elapsed
    return {
        "afetch": __version__,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(duration, 3),
        "exit_code": exit_code,
        "signal": signal,
        "urls": {
            "done": stats.done,
            "ok": stats.ok,
            "not_ok": stats.done - stats.ok,
            "total": stats.total,
            "earlier": stats.earlier,
            "earlier_ok": stats.earlier_ok,
        },
        "classes": {name: stats.by_class[name] for name in CLASSES},
        "statuses": {str(status): n for status, n in sorted(tally.statuses.items())},
        "errors": dict(sorted(stats.errors.items(), key=lambda item: (-item[1], item[0]))),
        "changes": dict(sorted(tally.changes.items())),
        "latency_ms": percentiles,
        "bytes": stats.bytes,
        "rate_per_s": round(stats.done / duration, 1) if duration > 0 else 0.0,
        "slowest": tally.slowest(),
        "worst_hosts": [
            {"host": host, "not_ok": n}
            for host, n in sorted(tally.not_ok_hosts.items(), key=lambda item: (-item[1], item[0]))[
                :WORST_HOSTS
            ]
        ],
        "failures": tally.failures,
    }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What each report is written from: the summary, the tally behind it, when the run ended."""

    summary: dict[str, Any]
    tally: Tally
    #: Unix time.
    finished: float
