"""Retries, per-host politeness, rate limits and unreachable hosts.

Against real loopback servers; the waits (backoff, Retry-After, rates) on a fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest

import afetch
from afetch import Record
from afetch._loopback import LoopbackServer
from afetch._settings import Settings
from afetch.schedule.affinity import lookahead
from tests.fake_clock import FakeClock, Recorder, SlowServer, collect_on
from tests.helpers import collect

URL = "http://t.test/"


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


def test_retry_after_from_a_real_server_is_honoured(server: LoopbackServer) -> None:
    # End to end (wire, fetcher, policy, scheduler); the exact waits are checked on a fake
    # clock below. A lower bound only: load on the machine can only make it slower.
    path = f"/retry-after/{key()}/1?after=1"
    (record,), elapsed = timed([server.url(path)], backoff=0.0)
    assert (record.status, record.attempts) == (200, 2)
    assert elapsed >= 0.9


def failing_first(
    times: int, status: int = 503, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """Answer each URL ``status`` (with ``headers``) its first ``times`` times, then 200."""
    seen: Counter[str] = Counter()

    def respond(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] += 1
        if seen[str(request.url)] <= times:
            return httpx.Response(status, headers=headers)
        return httpx.Response(200)

    return respond


def test_retry_after_seconds_is_waited_exactly() -> None:
    clock = FakeClock()
    server = Recorder(clock, failing_first(1, 429, {"Retry-After": "3"}))
    (record,) = collect_on(clock, [URL], transport=server.transport(), backoff=0.0)
    assert (record.status, record.attempts) == (200, 2)
    assert server.times(URL) == [0.0, 3.0]


def test_retry_after_http_date_is_honoured() -> None:
    clock = FakeClock()
    when = formatdate(time.time() + 2, usegmt=True)
    server = Recorder(clock, failing_first(1, 503, {"Retry-After": when}))
    (record,) = collect_on(clock, [URL], transport=server.transport(), backoff=0.0)
    assert (record.status, record.attempts) == (200, 2)
    first, second = server.times(URL)
    # The date has one-second resolution, and time.time() and the loop's clock differ by a hair.
    assert 0.9 <= second - first <= 2.0


def test_retry_after_beyond_the_cap_ends_the_retries_at_once() -> None:
    clock = FakeClock()
    server = Recorder(clock, failing_first(1, 429, {"Retry-After": "30"}))
    (record,) = collect_on(clock, [URL], transport=server.transport(), max_retry_wait=2.0)
    assert (record.status, record.attempts) == (429, 1)
    assert clock.elapsed() == 0.0  # no wait at all, not even the cap


def test_backoff_waits_stay_within_the_jitter_bounds() -> None:
    clock = FakeClock()
    server = Recorder(clock, failing_first(3))
    urls = [f"{URL}{i}" for i in range(20)]
    records = collect_on(clock, urls, transport=server.transport(), retries=3, backoff=1.0)
    assert all((r.status, r.attempts) == (200, 4) for r in records)
    waits = [b - a for url in urls for a, b in itertools.pairwise(server.times(url))]
    ceilings = [1.0, 2.0, 4.0] * len(urls)  # BACKOFF * 2^(n-1) before retry n
    assert all(0.0 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True))
    assert len(set(waits)) > 10  # jittered, not one fixed delay


def test_backoff_is_capped_by_max_retry_wait() -> None:
    clock = FakeClock()
    server = Recorder(clock, failing_first(2))
    urls = [f"{URL}{i}" for i in range(10)]
    collect_on(clock, urls, transport=server.transport(), backoff=100.0, max_retry_wait=0.5)
    waits = [b - a for url in urls for a, b in itertools.pairwise(server.times(url))]
    assert len(waits) == 20
    assert all(0.0 <= wait <= 0.5 for wait in waits)


def test_a_url_waiting_to_retry_holds_no_slot() -> None:
    # One slot: while the first URL waits out its Retry-After, the second one runs and finishes.
    clock = FakeClock()
    first, second = f"{URL}first", f"{URL}second"
    retry_first = failing_first(1, 429, {"Retry-After": "2"})
    server = Recorder(
        clock, lambda request: retry_first(request) if request.url == first else httpx.Response(200)
    )
    records = collect_on(
        clock, [first, second], transport=server.transport(), concurrency=1, backoff=0.0
    )
    assert [r.url for r in records] == [second, first]
    assert server.times(second) == [0.0]
    assert server.times(first) == [0.0, 2.0]


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


def test_per_host_bound_without_head_of_line_blocking() -> None:
    clock = FakeClock()
    server = SlowServer(clock, lambda request: 0.5 if request.url.host == "slow.test" else 0.1)
    # The slow host's URLs come first; with 2 of them in flight the next 6 are parked and the
    # fast host's URLs behind them get free slots at once instead of waiting their turn.
    slow_urls = [f"http://slow.test/{i}" for i in range(8)]
    fast_urls = [f"http://fast.test/{i}" for i in range(10)]
    records = collect_on(
        clock, slow_urls + fast_urls, transport=server.transport(), concurrency=6, per_host=2
    )
    assert len(records) == 18
    assert sorted(r.url for r in records) == sorted(slow_urls + fast_urls)
    assert all(r.ok for r in records)
    assert server.peak == {("http", "slow.test", None): 2, ("http", "fast.test", None): 2}
    # Fast: 10 x 0.1 s, 2 at a time, done at 0.5 s, side by side with the slow host's first
    # round (with head-of-line blocking it would finish after the slow host's third, at 1.5 s).
    assert max(at for url, at in server.finished if url in fast_urls) == pytest.approx(0.5)
    assert clock.elapsed() == pytest.approx(2.0)  # 8 slow URLs, 2 at a time, 0.5 s each


def test_per_host_counts_scheme_host_and_port() -> None:
    clock = FakeClock()
    server = SlowServer(clock, lambda request: 0.3)
    hosts = ("http://a.test:8001", "http://a.test:8002", "https://a.test:8001")
    urls = [f"{host}/{i}" for i in range(4) for host in hosts]
    records = collect_on(clock, urls, transport=server.transport(), concurrency=10, per_host=1)
    assert len(records) == 12
    assert set(server.peak.values()) == {1}
    assert len(server.peak) == 3
    # Side by side: 4 x 0.3 s = 1.2 s, 3 at once; as one host it would take 3.6 s.
    assert server.peak_all == 3
    assert clock.elapsed() == pytest.approx(1.2)


def test_lookahead_is_bounded(server: LoopbackServer) -> None:
    # Every URL is for one host limited to 1 in flight: the scheduler may park some URLs ahead,
    # but never reads the whole list.
    pulled = 0
    bound = lookahead(4, prefetch=False)

    async def urls() -> AsyncIterator[str]:
        nonlocal pulled
        for i in range(3 * bound):
            pulled += 1
            yield server.url(f"/ok?size=1&i={i}")

    async def run() -> int:
        stream = afetch.fetch(urls(), concurrency=4, per_host=1)
        await anext(stream)
        seen = pulled
        await stream.aclose()
        return seen

    assert asyncio.run(run()) <= 4 + bound + 2


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
        # Only afetch's own tasks (its workers): an engine may run helper tasks of its own.
        return sum(1 for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "_Run._work")

    async def run() -> int:
        nonlocal most
        count = 0
        async for _ in afetch.fetch(urls, concurrency=3, per_host=2, backoff=0.3):
            most = max(most, attempts_running())
            count += 1
        return count

    assert asyncio.run(run()) == 60
    # Plain URLs on libcurl run on callbacks, with no worker task at all; never a task per URL.
    assert most <= 3
    assert a.stats.max_in_flight == 2  # the busy host was kept at its limit, not over it
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


def test_rate_spaces_request_starts() -> None:
    clock = FakeClock()
    server = Recorder(clock, lambda request: httpx.Response(200))
    urls = [f"{URL}{i}" for i in range(11)]
    records = collect_on(clock, urls, transport=server.transport(), concurrency=10, rate=10)
    assert all(r.ok for r in records)
    starts = [at for _, at in server.starts]
    assert starts == pytest.approx([i / 10 for i in range(11)])  # no burst, no slack


def test_retries_count_against_the_rate() -> None:
    clock = FakeClock()
    server = Recorder(clock, failing_first(2))
    (record,) = collect_on(clock, [URL], transport=server.transport(), rate=5, backoff=0.0)
    assert record.attempts == 3
    assert server.times(URL) == pytest.approx([0.0, 0.2, 0.4])  # 3 starts at 5/s


def test_host_rate_is_per_host() -> None:
    clock = FakeClock()
    server = Recorder(clock, lambda request: httpx.Response(200))
    hosts = ("http://a.test/", "http://b.test/")
    urls = [f"{host}{i}" for i in range(6) for host in hosts]
    records = collect_on(clock, urls, transport=server.transport(), concurrency=10, host_rate=4)
    assert len(records) == 12
    for host in hosts:
        # Each host on its own: 6 starts 0.25 s apart, side by side with the other host.
        starts = [at for url, at in server.starts if url.startswith(host)]
        assert starts == pytest.approx([i / 4 for i in range(6)])


def test_rate_and_host_rate_together() -> None:
    clock = FakeClock()
    server = Recorder(clock, lambda request: httpx.Response(200))
    urls = [f"http://{host}.test/{i}" for i in range(4) for host in "abc"]
    collect_on(clock, urls, transport=server.transport(), concurrency=10, rate=10, host_rate=2)
    starts = [at for _, at in server.starts]
    assert len(starts) == 12
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(starts))  # overall 10/s
    for host in "abc":
        mine = [at for url, at in server.starts if f"//{host}." in url]
        assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(mine))  # 2/s per host


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


def test_batches_give_every_record_once(server: LoopbackServer) -> None:
    """schedule_batches (the command line's way): every record exactly once, several to a
    list when the consumer is slower than the fetching."""
    from afetch._api import _open_fetcher
    from afetch.schedule.scheduler import schedule_batches

    urls = [server.url(f"/sleep/5?i={i}") for i in range(60)]
    settings = Settings(concurrency=4)

    async def run() -> tuple[list[int], list[str]]:
        fetcher, engine, _ = _open_fetcher(settings, None)
        sizes, seen = [], []
        try:
            async for batch in schedule_batches(urls, fetcher=fetcher, settings=settings):
                sizes.append(len(batch))
                seen += [record.url for record in batch]
                await asyncio.sleep(0.03)  # a slow consumer: records pile up meanwhile
        finally:
            await engine.aclose()
        return sizes, seen

    sizes, seen = asyncio.run(run())
    assert sorted(seen) == sorted(urls)
    assert len(seen) == len(set(seen))
    assert max(sizes) > 1


def test_a_timeout_is_kept_on_the_runs_clock() -> None:
    """The attempt's deadline is a time on the run's clock, kept by the engine: on the fake
    clock a request that never gets an answer ends exactly ``timeout`` later, and a retry
    waits its backoff after it (no wall-clock margin)."""
    clock = FakeClock()
    started: list[float] = []

    async def never(request: httpx.Request) -> httpx.Response:
        started.append(clock.elapsed())
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    records = collect_on(
        clock,
        ["http://127.0.0.1/never"],
        transport=httpx.MockTransport(never),
        timeout=5.0,
        retries=1,
        backoff=2.0,
    )
    assert [r.error.type if r.error else None for r in records] == ["timeout"]
    assert records[0].attempts == 2
    assert started[0] == 0.0
    assert 5.0 < started[1] <= 5.0 + 2.0  # the backoff's wait (jittered) after the deadline
    assert clock.elapsed() == started[1] + 5.0


def test_the_reader_lets_the_loop_turn_after_a_batch_of_admitted_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Admitting a URL starts its attempt: at -c 500 the first 500 were all started in one turn
    (~20 ms) before the engine could send the first request. The reader yields every
    ADMITS_PER_TURN URLs in a row, so the engine adds, connects and sends meanwhile."""
    from afetch.schedule import intake

    monkeypatch.setattr(intake, "ADMITS_PER_TURN", 8)
    admitted: list[str] = []
    seen_by_the_loop: list[int] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: seen_by_the_loop.append(len(admitted)))
        await intake.Intake().feed([f"u{i}" for i in range(20)], admitted.append, None)

    asyncio.run(run())
    assert admitted == [f"u{i}" for i in range(20)]
    assert seen_by_the_loop == [8]
