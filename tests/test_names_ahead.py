"""Host names looked up ahead (afetch.engine.names): the run tells the engine each URL's origin
as it reads the URL, threads of the run's own resolve it, and the first transfer to that origin
carries the addresses into libcurl's DNS cache.

The names here (``*.test``) resolve nowhere on this machine: a fetch that reaches the loopback
server under such a name got its address from the look-ahead, nowhere else."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afetch._loopback import LoopbackServer
from afetch._settings import Settings
from afetch.engine import names
from afetch.engine.base import Collect, Request
from afetch.engine.curl import CurlEngine
from afetch.engine.curl.setup import _PROXY_ENVIRONMENT
from afetch.engine.names import NamesAhead, worth_asking
from tests.helpers import fetch_on, transfer, wait_until


class Lookups:
    """A resolver that knows ``*.test`` names as 127.0.0.1, counts what it was asked and fails
    for names starting with ``fails``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            self.asked.append((host, port))
        if host.startswith("fails"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ["127.0.0.1"] if host.endswith(".test") else []


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names are looked up only where no proxy may be used: none from the machine's
    environment here (no_proxy included)."""
    for name in _PROXY_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Lookups:
    fake = Lookups()
    monkeypatch.setattr(names, "system_lookup", fake)
    return fake


@pytest.fixture(scope="module")
def server() -> LoopbackServer:
    with LoopbackServer() as running:
        yield running


def test_the_first_transfer_to_a_host_looked_up_ahead_carries_its_address(
    lookups: Lookups, server: LoopbackServer
) -> None:
    origin = f"http://ahead.test:{server.port}"

    async def run() -> list[int]:
        engine = CurlEngine(Settings(concurrency=1))
        try:
            assert engine.resolve_ahead is not None
            engine.resolve_ahead(origin)
            engine.resolve_ahead(origin)  # asked once
            await asyncio.to_thread(wait_until, lambda: bool(engine._names.answers))
            statuses = []
            for _ in range(2):  # the second from libcurl's cache, on the same handle
                response, _ = await transfer(engine, Request("GET", f"{origin}/ok", ()))
                statuses.append(response.status)
                (slot,) = engine._free
                statuses.append(slot.resolves)
            return statuses
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == [200, True, 200, False]
    assert lookups.asked == [("ahead.test", server.port)]


def test_a_run_looks_up_each_host_once_and_fetches_it(
    lookups: Lookups, server: LoopbackServer
) -> None:
    urls = [f"http://h{i % 5}.test:{server.port}/ok?{i}" for i in range(20)]
    records = fetch_on(urls, concurrency=2)
    assert sorted(r.status for r in records) == [200] * 20
    assert sorted(lookups.asked) == [(f"h{i}.test", server.port) for i in range(5)]


def test_a_name_the_look_ahead_cannot_resolve_is_left_to_the_engine(
    lookups: Lookups, server: LoopbackServer
) -> None:
    (record,) = fetch_on([f"http://fails.test:{server.port}/ok"])
    assert lookups.asked == [("fails.test", server.port)]
    assert record.error is not None
    assert record.error.type == "dns"


def test_ip_literals_and_localhost_are_not_looked_up(
    lookups: Lookups, server: LoopbackServer
) -> None:
    urls = [f"http://127.0.0.1:{server.port}/ok", f"http://localhost:{server.port}/ok"]
    assert [r.status for r in fetch_on(urls, concurrency=1)] == [200, 200]
    assert lookups.asked == []


def test_nothing_is_looked_up_through_a_proxy_under_no_private_or_with_timings(
    lookups: Lookups, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def ahead(settings: Settings, collect: Collect | None = None) -> bool:
        engine = CurlEngine(settings, collect)
        try:
            return engine.resolve_ahead is not None
        finally:
            await engine.aclose()

    assert asyncio.run(ahead(Settings(proxy="http://127.0.0.1:9"))) is False
    assert asyncio.run(ahead(Settings(proxy=""))) is True
    assert asyncio.run(ahead(Settings(), Collect(transfer=True))) is False  # timings: dns is 0
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    assert asyncio.run(ahead(Settings())) is False
    assert asyncio.run(ahead(Settings(proxy=""))) is True  # "" turns the environment's off
    monkeypatch.delenv("https_proxy")
    assert asyncio.run(ahead(Settings())) is True
    monkeypatch.setenv("no_proxy", "*")  # any proxy variable: libcurl reads the environment
    assert asyncio.run(ahead(Settings())) is False
    monkeypatch.delenv("no_proxy")

    from afetch._api import _close, _open_fetcher

    async def fetcher_ahead(settings: Settings) -> bool:
        fetcher, engine, check = _open_fetcher(settings, None)
        await _close(engine, check)
        return fetcher.resolve_ahead is not None

    assert asyncio.run(fetcher_ahead(Settings(no_private=True))) is False
    assert asyncio.run(fetcher_ahead(Settings())) is True


def _held_transfer(
    lookup: names.Lookup, url: str, settings: Settings, *, cancel: bool = False
) -> tuple[object, float, CurlEngine]:
    """Start a transfer to ``url`` just after its origin was asked of ``lookup``: the response
    status (or the failure), the seconds it took, and the engine (closed; ``free``: its pooled
    handles before that)."""
    end = url.find("/", 8)

    async def run() -> tuple[object, float, CurlEngine]:
        engine = CurlEngine(settings)
        engine._names._lookup = lookup
        started = time.monotonic()
        try:
            assert engine.resolve_ahead is not None
            engine.resolve_ahead(url[:end])
            if cancel:
                told: list[object] = []
                slot = engine.start_transfer(
                    Request("GET", url, ()), on_done=lambda *a: told.append(a)
                )
                assert slot.deferred is not None  # held
                slot.cancel()
                await asyncio.sleep(0.5)
                return told, time.monotonic() - started, engine
            try:
                response, _ = await transfer(engine, Request("GET", url, ()))
                outcome: object = response.status
            except Exception as exc:
                outcome = exc
            return outcome, time.monotonic() - started, engine
        finally:
            engine.free = list(engine._free)  # type: ignore[attr-defined]
            await engine.aclose()

    return asyncio.run(run())


def test_a_transfer_started_while_its_lookup_is_under_way_waits_for_it(
    server: LoopbackServer,
) -> None:
    def slow(host: str, port: int) -> list[str]:
        time.sleep(0.3)
        return ["127.0.0.1"]

    url = f"http://slow.test:{server.port}/ok"
    status, took, _ = _held_transfer(slow, url, Settings(concurrency=1))
    assert status == 200  # libcurl alone cannot resolve slow.test
    assert took >= 0.3


def test_a_held_transfer_whose_lookup_fails_is_left_to_the_engine_at_once(
    server: LoopbackServer,
) -> None:
    def fails(host: str, port: int) -> list[str]:
        time.sleep(0.1)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    url = f"http://fails.test:{server.port}/ok"
    failure, took, _ = _held_transfer(fails, url, Settings(concurrency=1, connect_timeout=20))
    assert getattr(failure, "error_type", None) == "dns"
    assert took < 5  # not the 10 s a transfer may wait for its lookup here


def test_a_transfer_waits_for_its_lookup_half_its_connect_timeout_at_most(
    server: LoopbackServer,
) -> None:
    release = threading.Event()

    def stuck(host: str, port: int) -> list[str]:
        release.wait(30)
        return ["127.0.0.1"]

    url = f"http://stuck.test:{server.port}/ok"
    try:
        failure, took, engine = _held_transfer(
            stuck, url, Settings(concurrency=1, connect_timeout=0.4)
        )
    finally:
        release.set()
    assert getattr(failure, "error_type", None) in ("dns", "timeout")  # libcurl's own lookup
    assert 0.2 <= took < 5
    (slot,) = engine.free
    assert 1 <= slot.connect_ms <= 200  # what the wait (200 ms or a little more) left of 400


def test_a_held_transfer_that_is_cancelled_never_begins(server: LoopbackServer) -> None:
    def slow(host: str, port: int) -> list[str]:
        time.sleep(0.1)
        return ["127.0.0.1"]

    url = f"http://slow.test:{server.port}/status/204"
    told, _, engine = _held_transfer(slow, url, Settings(concurrency=1), cancel=True)
    assert told == []
    assert server.stats.by_path["/status/204"] == 0
    assert not engine._pending
    assert not engine._names._held


class FakeClock:
    now = 100.0

    def time(self) -> float:
        return self.now


def _answered(ahead: NamesAhead, count: int) -> None:
    wait_until(lambda: len(ahead.answers) >= count, timeout=10)


def test_an_answer_is_used_for_a_minute_and_the_host_asked_again_after() -> None:
    clock, asked = FakeClock(), []
    ahead = NamesAhead(lookups=1, time=clock.time, lookup=lambda h, p: asked.append(h) or ["::1"])
    try:
        ahead.ask("https://a.test")
        _answered(ahead, 1)
        clock.now += names.TTL - 1
        ahead.ask("https://a.test")  # asked less than a minute ago: not again
        assert ahead.take("https://a.test") == ("a.test", 443, ["::1"])
        clock.now += 1
        ahead.ask("https://a.test")
        _answered(ahead, 1)
        clock.now += names.TTL  # answered, but too late to be used
        assert ahead.take("https://a.test") is None
        assert asked == ["a.test", "a.test"]
    finally:
        ahead.close()


def test_what_it_remembers_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names, "MAX_ORIGINS", 10)
    clock = FakeClock()
    ahead = NamesAhead(lookups=4, time=clock.time, lookup=lambda h, p: ["192.0.2.1"])
    try:
        for i in range(30):
            ahead.ask(f"http://n{i}.test")
        assert len(ahead._asked) == 10
        assert "http://n29.test" in ahead._asked
        _answered(ahead, 30)
        assert ahead.take("http://n29.test") is not None
        assert len(ahead._ready) == 9
        assert "http://n0.test" not in ahead._ready
    finally:
        ahead.close()


def test_closing_drops_the_lookups_not_begun() -> None:
    started, release, asked = threading.Event(), threading.Event(), []

    def slow(host: str, port: int) -> list[str]:
        asked.append(host)
        started.set()
        release.wait(10)
        return ["192.0.2.1"]

    ahead = NamesAhead(lookups=1, time=FakeClock().time, lookup=slow)
    for name in ("a", "b", "c"):
        ahead.ask(f"http://{name}.test")
    assert started.wait(10)
    ahead.close()
    release.set()
    wait_until(lambda: len(ahead.answers) == 1, timeout=10)
    assert asked == ["a.test"]


@given(st.ip_addresses(), st.integers(1, 65535), st.sampled_from(["http", "https"]))
def test_no_ip_literal_is_looked_up(
    address: ipaddress._BaseAddress, port: int, scheme: str
) -> None:
    host = f"[{address}]" if address.version == 6 else str(address)
    assert not worth_asking(f"{scheme}://{host}:{port}")
    assert not worth_asking(f"{scheme}://{host}")


@given(st.text(max_size=40))
def test_any_origin_is_judged_without_error(origin: str) -> None:
    assert worth_asking(origin) in (True, False)
    assert worth_asking(f"http://{origin}") in (True, False)


def _worth_asking_by_slices(origin: str) -> bool:
    """worth_asking as first written (the port and the host's end found by slicing)."""
    if not origin.startswith(("http://", "https://")):
        return False
    end = origin.rfind(":")
    if end < 6 or not origin[end + 1 :].isdigit():
        end = len(origin)
    last = origin[end - 1 : end]
    if not last or last.isdigit() or last in "].":
        return False
    host = origin[origin.find("//") + 2 : end].lower()
    return not (host == "localhost" or host.endswith(".localhost") or "%" in host)


@given(
    st.sampled_from(["http://", "https://", "ftp://", "http:/", ""]),
    st.text(alphabet="ab.:]%[0129\u0663LOCALHOSTlocalhost/", max_size=24),
)
def test_the_judgement_is_the_one_first_written(scheme: str, rest: str) -> None:
    """The cheaper judgement (one rpartition, no slices) says what the slices said."""
    origin = scheme + rest
    assert worth_asking(origin) == _worth_asking_by_slices(origin)


def test_the_system_lookup_finds_a_name_where_loopback_may_be_the_only_interface() -> None:
    # getaddrinfo with AI_ADDRCONFIG answers nothing there; libcurl's resolver would answer.
    assert set(names.system_lookup("localhost", 80)) & {"127.0.0.1", "::1"}


def test_an_answer_that_comes_as_a_transfer_is_held_begins_it_at_once() -> None:
    # The answer came after the engine's take() looked and before hold(): no thread saw the
    # transfer held, so hold() itself begins it.
    begun: list[tuple[object, object]] = []

    async def run() -> bool:
        ahead = NamesAhead(
            lookups=1,
            time=FakeClock().time,
            lookup=lambda h, p: ["192.0.2.9"],
            begin=lambda transfer, answer: begun.append((transfer, answer)),
        )
        try:
            ahead.ask("http://late.test")
            await asyncio.to_thread(_answered, ahead, 1)
            return ahead.hold("http://late.test", "transfer", 5.0)
        finally:
            ahead.close()

    assert asyncio.run(run()) is True
    assert begun == [("transfer", ("late.test", 80, ["192.0.2.9"]))]
