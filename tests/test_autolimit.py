"""``--per-host auto``: the AutoLimit policy as pure units, the scheduler on a fake clock, the CLI
against a real loopback host that refuses past a threshold."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from afetch import Settings
from afetch._loopback import LoopbackServer
from afetch.schedule.autolimit import START, AutoLimit
from afetch.schedule.hosts import BusiestHosts, HostTable, host_key
from tests.cli_run import afetch_cli, jsonl
from tests.fake_clock import FakeClock, collect_on

URL = "http://t.test/"


def succeed(auto: AutoLimit, times: int, *, ms: float = 10.0) -> None:
    for _ in range(times):
        auto.finished(status=200, elapsed_ms=ms, epoch=auto.epoch)


def test_starts_at_two() -> None:
    assert AutoLimit(ceiling=50).limit == START == 2


def test_one_more_after_each_window_of_the_current_limit() -> None:
    auto = AutoLimit(ceiling=50)
    succeed(auto, 1)
    assert auto.limit == 2  # half a window
    succeed(auto, 1)
    assert auto.limit == 3
    succeed(auto, 2)
    assert auto.limit == 3  # the window is now 3 wide
    succeed(auto, 1)
    assert auto.limit == 4
    succeed(auto, 4 + 5 + 6)
    assert auto.limit == 7


def test_slow_successes_do_not_raise_the_limit() -> None:
    auto = AutoLimit(ceiling=50)
    succeed(auto, 2, ms=10.0)
    assert (auto.limit, auto.best_ms) == (3, 10.0)
    for _ in range(20):  # 2 fast, then 1 over 2x the best: the window starts again
        succeed(auto, 2, ms=19.0)
        succeed(auto, 1, ms=21.0)
    assert auto.limit == 3
    succeed(auto, 3, ms=20.0)  # exactly 2x still counts
    assert auto.limit == 4


def test_halves_on_429_503_timeout_and_reset_never_below_one() -> None:
    auto = AutoLimit(ceiling=64, start=40)
    auto.finished(status=503, epoch=auto.epoch)
    assert auto.limit == 20
    auto.finished(status=429, epoch=auto.epoch)
    assert auto.limit == 10
    auto.finished(error_type="timeout", epoch=auto.epoch)
    assert auto.limit == 5
    auto.finished(error_type="reset", epoch=auto.epoch)
    assert auto.limit == 2
    for _ in range(5):
        auto.finished(status=503, epoch=auto.epoch)
    assert auto.limit == 1


def test_one_overload_halves_once_whatever_was_in_flight() -> None:
    auto = AutoLimit(ceiling=64, start=32)
    sent_at = auto.epoch  # 32 requests in flight, all started under limit 32
    for _ in range(32):
        auto.finished(status=503, epoch=sent_at)
    assert auto.limit == 16
    auto.finished(status=503, epoch=auto.epoch)  # started after the halving: halves again
    assert auto.limit == 8


def test_a_halving_restarts_the_window() -> None:
    auto = AutoLimit(ceiling=64, start=4)
    succeed(auto, 3)
    auto.finished(status=503, epoch=auto.epoch)
    succeed(auto, 1)
    assert auto.limit == 2
    succeed(auto, 1)
    assert auto.limit == 3


def test_never_above_the_ceiling() -> None:
    auto = AutoLimit(ceiling=5)
    succeed(auto, 1000)
    assert auto.limit == 5
    assert AutoLimit(ceiling=1).limit == 1


@pytest.mark.parametrize(
    "outcome",
    [
        {"status": 404},  # counts as a success (the host answered at once)
        {"status": 500},
        {"status": 502},
        {"error_type": "connect"},
        {"error_type": "dns"},
    ],
)
def test_other_outcomes_do_not_lower_the_limit(outcome: dict[str, Any]) -> None:
    auto = AutoLimit(ceiling=50, start=8)
    for _ in range(20):
        auto.finished(elapsed_ms=10.0, epoch=auto.epoch, **outcome)
    assert auto.limit >= 8
    assert auto.requests == 20


def test_a_forgotten_host_keeps_what_it_learned() -> None:
    table = HostTable(limit="auto", rate=None, max_errors=None, ceiling=10, now=lambda: 0.0)
    host = table.get(host_key("http://a.test/"))
    assert host.limit == 2
    for _ in range(2):
        table.note(host, None, status=200, elapsed_ms=5.0, epoch=0)
    assert host.limit == 3
    table.release(host)
    assert len(table) == 0
    again = table.get(host_key("http://a.test/x"))
    assert again is not host
    assert again.limit == 3
    assert table.busiest(5) == [(("http", "a.test", 80), 2, 3)]


def test_settings_take_a_number_or_auto() -> None:
    assert Settings(per_host="auto").per_host == "auto"
    assert Settings(per_host=3).per_host == 3
    for bad in ("fast", 0, 2.5, True):
        with pytest.raises(ValueError, match="per_host"):
            Settings(per_host=bad)  # type: ignore[arg-type]


# -- the scheduler on a fake clock --------------------------------------------------------------


class OverloadedHost:
    """A MockTransport handler: each answer takes ``latency`` s on the fake clock, and the host
    answers 503 to a request that arrives while ``threshold`` are already in flight."""

    def __init__(self, clock: FakeClock, *, threshold: int, latency: float = 0.1) -> None:
        self.clock = clock
        self.threshold = threshold
        self.latency = latency
        self.in_flight = 0
        self.max_in_flight = 0
        self.overloads = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.in_flight >= self.threshold:
            self.overloads += 1
            return httpx.Response(503)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            done = asyncio.get_running_loop().create_future()
            self.clock.call_later(self.latency, done.set_result, None)
            await done
        finally:
            self.in_flight -= 1
        return httpx.Response(200)


def test_the_limit_settles_near_the_hosts_threshold() -> None:
    clock = FakeClock()
    host = OverloadedHost(clock, threshold=8)
    urls = [f"http://busy.test/{i}" for i in range(600)]
    busiest = BusiestHosts()
    records = collect_on(
        clock,
        urls,
        transport=httpx.MockTransport(host),
        concurrency=50,
        per_host="auto",
        retries=5,
        backoff=0.05,
        busiest=busiest,
    )
    assert len(records) == 600
    assert sum(r.status == 200 for r in records) == 600  # every 503 was retried away
    ((name, attempts, settled),) = busiest.rows
    assert name == "http://busy.test:80"
    assert attempts == 600 + host.overloads
    # AIMD saw-tooth below and around the threshold: never far above, never stuck low.
    assert 4 <= settled <= 9
    # Far fewer 503s than a fixed limit of 50 would get (every round past 8 is refused) ...
    assert host.overloads < 600 * 0.2
    # ... and far quicker than one at a time (600 x 0.1 s = 60 s).
    assert clock.elapsed() < 60 / 3


def test_auto_never_exceeds_concurrency_and_grows_to_it() -> None:
    clock = FakeClock()
    host = OverloadedHost(clock, threshold=100)
    busiest = BusiestHosts()
    urls = [f"http://big.test/{i}" for i in range(200)]
    collect_on(
        clock,
        urls,
        transport=httpx.MockTransport(host),
        concurrency=6,
        per_host="auto",
        busiest=busiest,
    )
    assert host.max_in_flight == 6
    assert busiest.rows == [("http://big.test:80", 200, 6)]


def test_a_fixed_per_host_is_unchanged() -> None:
    clock = FakeClock()
    host = OverloadedHost(clock, threshold=100)
    urls = [f"http://busy.test/{i}" for i in range(40)]
    collect_on(clock, urls, transport=httpx.MockTransport(host), concurrency=50, per_host=4)
    assert host.max_in_flight == 4
    assert clock.elapsed() == pytest.approx(1.0)  # 10 rounds of 4 x 0.1 s


# -- through the CLI, against a real loopback host that refuses past 8 in flight ------------------


def test_cli_auto_gets_fewer_503s_than_too_high_and_runs_side_by_side() -> None:
    def run(per_host: str) -> tuple[int, int, str]:
        with LoopbackServer() as server:
            urls = "".join(server.url(f"/busy/8/{i}?ms=20") + "\n" for i in range(200))
            done = afetch_cli("-c", "50", "--per-host", per_host, "--retries", "0", stdin=urls)
            records = jsonl(done.stdout)
            assert len(records) == 200
            refused = sum(r["status"] == 503 for r in records)
            assert refused == server.stats.busy_refused
            return server.stats.max_in_flight, refused, done.stderr

    auto_peak, auto_503, auto_summary = run("auto")
    _, high_503, high_summary = run("50")
    assert high_503 > 50  # the too-high limit really overloads the host
    assert auto_503 < high_503 / 3
    # Quicker than one at a time: side by side, beyond the starting limit (how much quicker is
    # checked on a fake clock above, not on the wall clock).
    assert auto_peak > START
    # The summary names the host and the limit it settled at, only under auto.
    assert re.search(
        r"per host\s+http://127\.0\.0\.1:\d+\s+\d+ requests, settled at \d+", auto_summary
    )
    assert "settled at" not in high_summary


def test_env_per_host_auto() -> None:
    with LoopbackServer() as server:
        done = afetch_cli(stdin=server.url("/ok") + "\n", env={"AFETCH_PER_HOST": "auto"})
    assert done.returncode == 0
    assert "settled at 2" in done.stderr


def test_retry_after_is_still_honoured_under_auto() -> None:
    clock = FakeClock()
    seen: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(clock.elapsed())
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "3"})
        return httpx.Response(200)

    (record,) = collect_on(
        clock, [URL], transport=httpx.MockTransport(respond), per_host="auto", backoff=0.0
    )
    assert (record.status, record.attempts) == (200, 2)
    assert seen == [0.0, 3.0]
