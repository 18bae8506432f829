"""Host names looked up by c-ares on the loop (afetch.engine.resolve), against a DNS server the
test starts on loopback: answers, their TTL, NXDOMAIN and silence as dns errors, the connect
timeout over a slow lookup, and --no-private checking through the same resolver, once."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from afetch import _api
from afetch._errors import classify
from afetch._record import Record
from afetch._settings import Settings
from afetch.attempt.fetcher import Fetcher
from afetch.engine import resolve
from afetch.engine.base import Collect, Request
from afetch.engine.curl import CurlEngine
from afetch.engine.guard import AddressCheck
from afetch.engine.resolve import Resolver
from tests.dns_server import Answer, DnsServer
from tests.helpers import transfer


@pytest.fixture
def dns() -> Iterator[Callable[[Callable[[str, int], Answer]], DnsServer]]:
    servers: list[DnsServer] = []

    def start(answer: Callable[[str, int], Answer]) -> DnsServer:
        servers.append(DnsServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def loopback(name: str, call: int) -> Answer:
    return ["127.0.0.1"], 60, 0.0


def test_a_name_is_asked_once_and_kept_for_its_ttl(dns) -> None:
    server = dns(lambda name, call: (["127.0.0.1"], 1, 0.0))

    async def run() -> list[list[str]]:
        resolver = Resolver(servers=[server.address])
        try:
            together = await asyncio.gather(*(resolver.resolve("a.test", 80) for _ in range(5)))
            again = await resolver.resolve("a.test", 80)
            await asyncio.sleep(1.2)  # the TTL ran out: asked again
            expired = await resolver.resolve("a.test", 80)
            return [*together, again, expired]
        finally:
            resolver.close()

    answers = asyncio.run(run())
    assert answers == [["127.0.0.1"]] * 7
    assert server.calls == {"a.test": 2}


def test_nxdomain_is_a_dns_error(dns) -> None:
    server = dns(lambda name, call: "nxdomain")

    async def run() -> BaseException:
        resolver = Resolver(servers=[server.address])
        try:
            with pytest.raises(socket.gaierror) as caught:
                await resolver.resolve("missing.test", 80)
            return caught.value
        finally:
            resolver.close()

    error = asyncio.run(run())
    assert error.errno == socket.EAI_NONAME
    assert classify(error).type == "dns"
    assert "missing.test" in classify(error).message


def test_a_server_that_never_answers_is_a_dns_error_in_bounded_time(dns) -> None:
    server = dns(lambda name, call: None)

    async def run() -> tuple[BaseException, float]:
        resolver = Resolver(servers=[server.address], timeout=0.2, tries=2)
        start = time.perf_counter()
        try:
            with pytest.raises(socket.gaierror) as caught:
                await resolver.resolve("silent.test", 80)
            return caught.value, time.perf_counter() - start
        finally:
            resolver.close()

    error, took = asyncio.run(run())
    assert classify(error).type == "dns"
    assert took < 5  # 2 tries of 0.2 s; generous for a loaded machine
    assert server.calls["silent.test"] >= 1


def fetch(
    engine_settings: Settings, server: DnsServer, urls: list[str], check: AddressCheck | None
) -> list[Record]:
    async def run() -> list[Record]:
        engine = CurlEngine(engine_settings, resolver=Resolver(servers=[server.address]))
        if check is not None and check.resolve is None:
            check.resolve = engine.resolver.resolve  # type: ignore[union-attr]  # as afetch._api
        fetcher = Fetcher(engine, engine_settings, address_check=check)
        try:
            return [(await fetcher.attempt(url))[0] for url in urls]
        finally:
            await engine.aclose()
            engine.resolver.close()  # type: ignore[union-attr]  # given, so not the engine's

    return asyncio.run(run())


def test_the_engine_connects_by_name_through_its_resolver(dns, fresh_stats) -> None:
    server = dns(loopback)
    urls = [f"http://site.test:{fresh_stats.port}/headers?n={n}" for n in range(3)]
    records = fetch(Settings(timeout=10), server, urls, None)
    assert [r.status for r in records] == [200, 200, 200], records
    assert fresh_stats.stats.last_headers["host"] == f"site.test:{fresh_stats.port}"
    assert server.calls == {"site.test": 1}  # kept for its TTL: asked once


def test_nxdomain_through_the_engine_is_a_dns_record(dns, fresh_stats) -> None:
    server = dns(lambda name, call: "nxdomain")
    (record,) = fetch(Settings(timeout=10), server, ["http://gone.test/"], None)
    assert record.error is not None
    assert record.error.type == "dns"
    assert fresh_stats.stats.requests == 0


def test_the_connect_timeout_covers_the_lookup(dns) -> None:
    server = dns(lambda name, call: (["127.0.0.1"], 60, 10.0))  # answers after 10 s
    start = time.perf_counter()
    (record,) = fetch(
        Settings(connect_timeout=0.3, timeout=30), server, ["http://slow.test/"], None
    )
    assert record.error is not None
    assert record.error.type == "timeout", record.error
    assert time.perf_counter() - start < 5


def policy_for(port: int) -> Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address, int], bool]:
    """127.0.0.1 on the test server's port counts as public; nothing else on loopback does."""

    def policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, to_port: int) -> bool:
        return str(address) == "127.0.0.1" and to_port == port

    return policy


def test_no_private_resolves_once_and_connects_to_the_checked_address(dns, fresh_stats) -> None:
    # DNS rebinding: the first answer passes the check, every later one is private. TTL 0, so
    # nothing is kept: a second lookup for the connection would get 127.0.0.2, where the test
    # server does not listen.
    server = dns(lambda name, call: (["127.0.0.1" if call == 1 else "127.0.0.2"], 0, 0.0))
    check = AddressCheck(policy=policy_for(fresh_stats.port))
    url = f"http://rebind.test:{fresh_stats.port}/ok"
    first, second = fetch(Settings(timeout=10, no_private=True), server, [url, url], check)
    assert first.ok, first
    assert second.error is not None
    assert second.error.type == "blocked"
    assert "rebind.test resolves to 127.0.0.2" in second.error.message
    assert server.calls == {"rebind.test": 2}  # one lookup per attempt, none by libcurl
    assert fresh_stats.stats.requests == 1


def test_no_private_refuses_a_private_answer_of_the_engines_resolver(
    dns, fresh_stats, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through afetch.fetch: the run's check gets the engine's resolver (afetch._api).
    server = dns(loopback)
    monkeypatch.setattr(resolve, "Resolver", functools.partial(Resolver, servers=[server.address]))

    async def run() -> list[Record]:
        import afetch

        url = f"http://inside.test:{fresh_stats.port}/ok"
        return [r async for r in afetch.fetch([url], no_private=True, retries=0)]

    (record,) = asyncio.run(run())
    assert record.error is not None
    assert record.error.type == "blocked"
    assert "inside.test resolves to 127.0.0.1, which is a loopback" in record.error.message
    assert server.calls == {"inside.test": 1}
    assert fresh_stats.stats.requests == 0


def test_a_proxy_resolves_the_names_itself() -> None:
    async def run() -> tuple[object, object]:
        proxied = CurlEngine(Settings(proxy="http://127.0.0.1:9"))
        direct = CurlEngine(Settings(proxy=""))
        try:
            return proxied.resolver, direct.resolver
        finally:
            await proxied.aclose()
            await direct.aclose()

    proxied, direct = asyncio.run(run())
    assert proxied is None
    assert isinstance(direct, Resolver)


def test_the_run_wires_the_engines_resolver_into_the_check(monkeypatch) -> None:
    seen: list[AddressCheck] = []
    real = _api.AddressCheck

    def spy() -> AddressCheck:
        seen.append(real())
        return seen[-1]

    monkeypatch.setattr(_api, "AddressCheck", spy)

    async def run() -> None:
        _, engine = _api._open_fetcher(Settings(no_private=True, proxy=""), None)
        try:
            assert seen[0].resolve == engine.resolver.resolve  # type: ignore[attr-defined]
        finally:
            await engine.aclose()

    asyncio.run(run())


def test_timings_count_the_engines_lookup(dns, server) -> None:
    # --include timings: cumulative since the request began, the lookup before libcurl's own
    # clock included (libcurl alone would say ~0 ms of dns).
    dns_server = dns(lambda name, call: (["127.0.0.1"], 60, 0.3))

    async def run() -> dict[str, float | None]:
        engine = CurlEngine(
            Settings(), Collect(transfer=True), resolver=Resolver(servers=[dns_server.address])
        )
        try:
            response, _ = await transfer(
                engine, Request("GET", f"http://slow-dns.test:{server.port}/ok", ())
            )
            assert response.info is not None
            assert response.info.timings is not None
            return response.info.timings
        finally:
            await engine.aclose()
            engine.resolver.close()  # type: ignore[union-attr]

    timings = asyncio.run(run())
    assert timings["dns"] is not None
    assert timings["dns"] >= 290, timings
    order = [timings[key] for key in ("dns", "connect", "first_byte", "total")]
    assert order == sorted(order), timings  # type: ignore[type-var]
