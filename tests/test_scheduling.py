"""Retries, per-host politeness, rate limits and unreachable hosts against real loopback servers."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import pytest

import afetch
from afetch import Record
from afetch._loopback import LoopbackServer
from tests.helpers import collect


def key() -> str:
    """A fresh key for the stateful /flaky and /retry-after routes of the shared server."""
    return uuid.uuid4().hex[:12]


def timed(urls: list[str], **options: Any) -> tuple[list[Record], float]:
    t0 = time.perf_counter()
    records = collect(urls, **options)
    return records, time.perf_counter() - t0


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    with LoopbackServer() as a, LoopbackServer() as b:
        yield a, b


# -- retries ------------------------------------------------------------------------------------


def test_fails_twice_then_succeeds_and_every_try_is_counted(server: LoopbackServer) -> None:
    path = f"/flaky/{key()}/2"
    (record,) = collect([server.url(path)], retries=2, backoff=0.01)
    assert (record.status, record.ok, record.attempts) == (200, True, 3)
    assert server.stats.by_path[path] == 3


def test_out_of_retries_the_record_describes_the_last_try(server: LoopbackServer) -> None:
    path = f"/flaky/{key()}/5?status=502"
    (record,) = collect([server.url(path)], retries=2, backoff=0.01)
    assert (record.status, record.ok, record.attempts) == (502, False, 3)
    assert server.stats.by_path[path.split("?")[0]] == 3


def test_retries_zero_means_one_try(server: LoopbackServer) -> None:
    (record,) = collect([server.url(f"/flaky/{key()}/1")], retries=0)
    assert (record.status, record.attempts) == (503, 1)


@pytest.mark.parametrize("status", [404, 500, 403, 408])
def test_other_statuses_are_not_retried(fresh_stats: LoopbackServer, status: int) -> None:
    (record,) = collect([fresh_stats.url(f"/status/{status}")], retries=3, backoff=0.01)
    assert (record.status, record.attempts) == (status, 1)
    assert fresh_stats.stats.by_path[f"/status/{status}"] == 1


def test_connection_refused_is_retried(closed_port: int) -> None:
    (record,) = collect([f"http://127.0.0.1:{closed_port}/"], retries=2, backoff=0.01)
    assert record.error is not None
    assert (record.error.type, record.attempts) == ("connect", 3)


def test_reset_and_timeout_are_retried(fresh_stats: LoopbackServer) -> None:
    urls = [fresh_stats.url("/reset"), fresh_stats.url("/hang")]
    records = {r.url: r for r in collect(urls, retries=1, backoff=0.01, timeout=0.3)}
    reset, hang = records[urls[0]], records[urls[1]]
    assert reset.error is not None
    assert hang.error is not None
    assert (reset.error.type, reset.attempts) == ("reset", 2)
    assert (hang.error.type, hang.attempts) == ("timeout", 2)
    assert fresh_stats.stats.by_path["/reset"] == 2


def test_retry_after_seconds_is_honoured(server: LoopbackServer) -> None:
    path = f"/retry-after/{key()}/1?after=1"
    (record,), elapsed = timed([server.url(path)], backoff=0.0)
    assert (record.status, record.attempts) == (200, 2)
    assert elapsed >= 0.9


def test_retry_after_http_date_is_honoured(server: LoopbackServer) -> None:
    when = formatdate(time.time() + 2, usegmt=True).replace(" ", "%20").replace(",", "%2C")
    path = f"/retry-after/{key()}/1?after={when}"
    (record,), elapsed = timed([server.url(path)], backoff=0.0)
    assert (record.status, record.attempts) == (200, 2)
    assert elapsed >= 0.9  # the date has one-second resolution: at least 1 s of the 2 remain


def test_retry_after_beyond_the_cap_ends_the_retries_at_once(server: LoopbackServer) -> None:
    path = f"/retry-after/{key()}/1?after=30"
    (record,), elapsed = timed([server.url(path)], max_retry_wait=2.0)
    assert (record.status, record.attempts) == (429, 1)
    assert elapsed < 5


def test_a_url_waiting_to_retry_holds_no_slot(server: LoopbackServer) -> None:
    # One slot: while the first URL waits out its Retry-After, the second one runs and finishes.
    first = server.url(f"/retry-after/{key()}/1?after=2")
    second = server.url("/ok")
    t0 = time.perf_counter()
    finished: list[tuple[str, float]] = []

    async def run() -> None:
        async for record in afetch.fetch([first, second], concurrency=1, backoff=0.0):
            finished.append((record.url, time.perf_counter() - t0))

    asyncio.run(run())
    assert [url for url, _ in finished] == [second, first]
    assert finished[0][1] < 1.5 < finished[1][1]


def test_stopping_while_a_retry_sleeps_ends_the_run_promptly(server: LoopbackServer) -> None:
    url = server.url(f"/retry-after/{key()}/1?after=30")

    async def run() -> tuple[list[Record], float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        t0 = time.perf_counter()
        records = [r async for r in afetch.fetch([url, server.url("/ok")], stop=stop)]
        return records, time.perf_counter() - t0

    records, elapsed = asyncio.run(run())
    assert [r.url for r in records] == [server.url("/ok")]
    assert elapsed < 5


# -- per-host politeness ------------------------------------------------------------------------


def test_per_host_bound_without_head_of_line_blocking(
    two_hosts: tuple[LoopbackServer, LoopbackServer],
) -> None:
    slow, fast = two_hosts
    slow.stats.reset()
    fast.stats.reset()
    # The slow host's URLs come first; with 2 of them in flight the next 6 are parked and the
    # fast host's URLs behind them get free slots at once instead of waiting their turn.
    slow_urls = [slow.url(f"/sleep/500?i={i}") for i in range(8)]
    fast_urls = [fast.url(f"/sleep/100?i={i}") for i in range(10)]
    records, elapsed = timed(slow_urls + fast_urls, concurrency=6, per_host=2)
    assert len(records) == 18
    assert sorted(r.url for r in records) == sorted(slow_urls + fast_urls)
    assert all(r.ok for r in records)
    assert slow.stats.max_in_flight == 2
    assert fast.stats.max_in_flight == 2  # the other host got slots while this one was full
    order = [r.url for r in records]
    last_fast = max(order.index(u) for u in fast_urls)
    slow_before = sum(1 for u in order[:last_fast] if u in slow_urls)
    # Fast: 10 x 0.1 s, 2 at a time = 0.5 s; it is done while the slow host is in round 1 or 2
    # of 4 (with head-of-line blocking it would finish after slow round 3).
    assert slow_before <= 4
    assert elapsed >= 1.9  # 8 URLs, 2 at a time, 0.5 s each


def test_per_host_counts_scheme_host_and_port(
    two_hosts: tuple[LoopbackServer, LoopbackServer],
) -> None:
    a, b = two_hosts
    a.stats.reset()
    b.stats.reset()
    urls = [s.url(f"/sleep/300?i={i}") for i in range(4) for s in (a, b)]
    records, elapsed = timed(urls, concurrency=10, per_host=1)
    assert len(records) == 8
    assert (a.stats.max_in_flight, b.stats.max_in_flight) == (1, 1)
    # Side by side: 4 x 0.3 s = 1.2 s; one after the other would take 2.4 s.
    assert elapsed < 2.0


def test_lookahead_is_bounded(server: LoopbackServer) -> None:
    # Every URL is for one host limited to 1 in flight: the scheduler may park some URLs ahead,
    # but never reads the whole list.
    pulled = 0

    async def urls() -> AsyncIterator[str]:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield server.url(f"/ok?size=1&i={i}")

    async def run() -> int:
        stream = afetch.fetch(urls(), concurrency=4, per_host=1)
        await anext(stream)
        seen = pulled
        await stream.aclose()
        return seen

    assert asyncio.run(run()) <= 4 + 4 * 4 + 2


def test_tasks_stay_within_concurrency_while_urls_wait(
    two_hosts: tuple[LoopbackServer, LoopbackServer],
) -> None:
    # Many URLs parked behind one busy host and many sleeping before a retry: none is a task.
    a, b = two_hosts
    a.stats.reset()
    b.stats.reset()
    k = key()
    urls = [a.url(f"/sleep/50?i={i}") for i in range(30)]
    urls += [b.url(f"/flaky/{k}{i}/1") for i in range(30)]
    most = 0

    def attempts_running() -> int:
        # Only afetch's own tasks: the transport (anyio) may run helper tasks of its own.
        return sum(1 for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "_Run._attempt")

    async def run() -> int:
        nonlocal most
        count = 0
        async for _ in afetch.fetch(urls, concurrency=3, per_host=2, backoff=0.3):
            most = max(most, attempts_running())
            count += 1
        return count

    assert asyncio.run(run()) == 60
    assert 2 <= most <= 3
    assert a.stats.max_in_flight <= 2
    assert b.stats.max_in_flight <= 2


def test_every_url_gets_one_record_under_all_options(server: LoopbackServer) -> None:
    k = key()
    urls = [
        *(server.url(f"/ok?i={i}") for i in range(40)),
        *(server.url(f"/flaky/{k}{i}/1") for i in range(10)),
        *(server.url(f"/status/404?i={i}") for i in range(10)),
        "not a url",
        "http://",
    ]
    records = collect(
        urls,
        concurrency=5,
        per_host=2,
        rate=500,
        host_rate=500,
        max_host_errors=3,
        backoff=0.01,
    )
    assert sorted(r.url for r in records) == sorted(urls)
    assert sum(r.ok for r in records) == 50


# -- rate limits --------------------------------------------------------------------------------


def test_rate_spaces_request_starts(fresh_stats: LoopbackServer) -> None:
    urls = [fresh_stats.url(f"/ok?i={i}") for i in range(11)]
    records, elapsed = timed(urls, concurrency=10, rate=10)
    assert all(r.ok for r in records)
    assert elapsed >= 0.9  # 11 starts at 10/s: 10 intervals of 0.1 s
    assert fresh_stats.stats.requests == 11


def test_retries_count_against_the_rate(server: LoopbackServer) -> None:
    (record,), elapsed = timed([server.url(f"/flaky/{key()}/2")], rate=5, backoff=0.0)
    assert record.attempts == 3
    assert elapsed >= 0.35  # 3 starts at 5/s


def test_host_rate_is_per_host(two_hosts: tuple[LoopbackServer, LoopbackServer]) -> None:
    a, b = two_hosts
    urls = [s.url(f"/ok?i={i}") for i in range(6) for s in (a, b)]
    records, elapsed = timed(urls, concurrency=10, host_rate=4)
    assert len(records) == 12
    # Each host: 6 starts at 4/s = 1.25 s; one shared limit would need 11 intervals = 2.75 s.
    assert 1.1 <= elapsed < 2.5


# -- unreachable hosts --------------------------------------------------------------------------


def test_max_host_errors_fails_the_rest_fast(closed_port: int) -> None:
    urls = [f"http://127.0.0.1:{closed_port}/{i}" for i in range(20)]
    records, elapsed = timed(urls, concurrency=1, retries=0, max_host_errors=3)
    types = [r.error.type if r.error else None for r in records]
    assert types == ["connect"] * 3 + ["host_unreachable"] * 17
    assert [r.attempts for r in records] == [1] * 3 + [0] * 17
    assert all(not r.ok and r.status is None for r in records)
    assert elapsed < 5


def test_max_host_errors_with_retries_and_concurrency(
    closed_port: int, server: LoopbackServer
) -> None:
    dead = [f"http://127.0.0.1:{closed_port}/{i}" for i in range(30)]
    alive = [server.url(f"/ok?i={i}") for i in range(10)]
    records = collect(dead + alive, concurrency=4, max_host_errors=2, backoff=0.05)
    by_url = {r.url: r for r in records}
    assert len(records) == 40
    assert all(by_url[u].ok for u in alive)  # another host is not affected
    dead_records = [by_url[u] for u in dead]
    kinds = [r.error.type for r in dead_records if r.error]
    assert len(kinds) == 30
    assert set(kinds) == {"connect", "host_unreachable"}
    assert kinds.count("host_unreachable") >= 20
    assert all(r.attempts == 0 for r in dead_records if r.error and r.error.type != "connect")
    assert all(1 <= r.attempts <= 3 for r in dead_records if r.error and r.error.type == "connect")


def test_a_response_resets_the_failure_count(server: LoopbackServer) -> None:
    # Timeouts alternate with answers: never 2 failures in a row, so nothing is skipped.
    urls = [server.url("/hang" if i % 2 else f"/ok?i={i}") for i in range(6)]
    records = collect(urls, concurrency=1, retries=0, timeout=0.2, max_host_errors=2)
    assert [r.error.type if r.error else None for r in records] == [None, "timeout"] * 3


def test_an_unparsable_retry_after_falls_back_to_the_backoff(server: LoopbackServer) -> None:
    # "²" passes str.isdigit() but not float(): it must not end the run.
    (record,) = collect(
        [server.url(f"/retry-after/{key()}/1?after=%C2%B2")], retries=1, backoff=0.01
    )
    assert (record.status, record.attempts, record.ok) == (200, 2, True)
