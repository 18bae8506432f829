"""Security: credentials and redirects across origins, --no-private, secrets kept out of records."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from afetch import Record, _api
from afetch._errors import Blocked, classify
from afetch._loopback import LoopbackServer
from afetch._redact import excerpt, mask_url, redact
from afetch._settings import Settings
from afetch.engine.guard import (
    AddressCheck,
    AddressPolicy,
    Resolver,
    is_public,
)
from afetch.engine.guard_transport import PrivateAddressGuard
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import collect, fetch_through

SECRET_HEADERS = (("Authorization", "Bearer tok-SECRET-1"), ("Cookie", "sid=SECRET-2"))


@pytest.fixture(scope="module")
def other_server() -> Iterator[LoopbackServer]:
    """A second origin (another port) for cross-origin redirects."""
    with LoopbackServer() as running:
        yield running


def echoed_headers(record: Record, server: LoopbackServer) -> dict[str, str]:
    assert record.ok, record
    return dict(server.stats.last_headers)


# --- credentials across redirects -----------------------------------------------------------


def test_credentials_are_not_sent_to_another_origin(
    server: LoopbackServer, other_server: LoopbackServer
) -> None:
    target = other_server.url("/headers")
    (record,) = collect(
        [server.url(f"/redirect-to?url={quote(target, safe='')}")],
        headers=(*SECRET_HEADERS, ("X-Trace", "kept")),
    )
    seen = echoed_headers(record, other_server)
    assert record.final_url == target
    assert "authorization" not in seen
    assert "cookie" not in seen
    assert seen["x-trace"] == "kept"


def test_credentials_stay_on_a_same_origin_redirect(server: LoopbackServer) -> None:
    (record,) = collect(
        [server.url(f"/redirect-to?url={quote('/headers', safe='')}")], headers=SECRET_HEADERS
    )
    seen = echoed_headers(record, server)
    assert seen["authorization"] == "Bearer tok-SECRET-1"
    assert seen["cookie"] == "sid=SECRET-2"


# --- --no-private -----------------------------------------------------------------------------


def test_loopback_is_blocked_with_no_private(fresh_stats: LoopbackServer) -> None:
    (record,) = collect([fresh_stats.url("/ok")], no_private=True)
    assert record.error is not None
    assert record.error.type == "blocked"
    assert "loopback" in record.error.message
    assert fresh_stats.stats.requests == 0  # nothing was sent


def test_loopback_is_allowed_by_default(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/ok")])
    assert record.ok


#: IPv6 addresses that carry a non-global IPv4 address: a NAT64 gateway, a 6to4 relay or the
#: host's own stack may deliver to it.
EMBEDDED_IPV4 = [
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[::ffff:10.0.0.1]/",  # IPv4-mapped private
    "http://[64:ff9b::7f00:1]/",  # NAT64 well-known prefix
    "http://[64:ff9b:1::a9fe:a9fe]/",  # NAT64 local-use prefix, cloud metadata
    "http://[2002:7f00:1::1]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
]


@pytest.mark.parametrize("url", EMBEDDED_IPV4)
def test_ipv6_embedding_a_private_ipv4_is_blocked_on_the_default_engine(url: str) -> None:
    (record,) = collect([url], no_private=True, timeout=2.0, retries=0)
    assert record.error is not None
    assert record.error.type == "blocked", record


def test_a_name_resolving_to_nat64_loopback_is_blocked() -> None:
    from afetch._errors import Blocked

    async def nat64(host: str, port: int) -> list[str]:
        return ["64:ff9b::7f00:1"]

    with pytest.raises(Blocked, match="resolves to 64:ff9b::7f00:1, which is a loopback"):
        asyncio.run(AddressCheck(resolve=nat64).pin("nat64.test", 80))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://0.0.0.0/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://[fe80::1]/",
        *EMBEDDED_IPV4,
    ],
)
def test_non_global_literals_are_blocked_without_sending(url: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    (record,) = collect([url], transport=httpx.MockTransport(handler), no_private=True)
    assert record.error is not None
    assert record.error.type == "blocked"
    assert sent == []


def only_port(port: int) -> AddressPolicy:
    """A policy that treats one loopback port as public."""

    def policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, to_port: int) -> bool:
        return to_port == port or is_public(address, to_port)

    return policy


@pytest.fixture(params=["curl", "httpcore"])
def checked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., httpx.AsyncBaseTransport | None]:
    """Engines with the --no-private check under a test policy: the default engine (libcurl)
    gets it from the fetcher, an httpx transport from the guard wrapped around it."""

    def make(policy: AddressPolicy, resolve: Resolver | None = None) -> object:
        if request.param == "curl":

            def check(**options: int) -> AddressCheck:
                return AddressCheck(policy=policy, resolve=resolve, **options)

            monkeypatch.setattr(_api, "AddressCheck", check)
            return None
        return PrivateAddressGuard(httpx.AsyncHTTPTransport(), policy=policy, resolve=resolve)

    return make


def run_guarded(urls: list[str], guard: httpx.AsyncBaseTransport | None) -> list[Record]:
    return fetch_through(urls, guard, no_private=True)


def test_a_redirect_to_a_private_address_is_blocked(
    server: LoopbackServer, other_server: LoopbackServer, checked: Callable[..., object]
) -> None:
    other_server.stats.reset()
    target = other_server.url("/ok")
    allowed = server.url(f"/redirect-to?url={quote(target, safe='')}")
    (record,) = run_guarded([allowed], checked(only_port(server.port)))
    assert record.error is not None
    assert record.error.type == "blocked"
    assert record.final_url == target
    assert record.redirects == 1
    assert other_server.stats.requests == 0


def test_the_allowed_port_itself_is_fetched(
    server: LoopbackServer, checked: Callable[..., object]
) -> None:
    (record,) = run_guarded([server.url("/ok")], checked(only_port(server.port)))
    assert record.ok


def _inner_transport(kind: str) -> httpx.AsyncBaseTransport:
    if kind == "aiohttp":
        return pytest.importorskip("httpx_aiohttp").AiohttpTransport()
    return httpx.AsyncHTTPTransport()


@pytest.mark.parametrize("kind", ["curl", "httpcore", "aiohttp"])
def test_a_name_is_resolved_once_and_the_checked_address_is_used(
    server: LoopbackServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: a resolver that answers public first and private afterwards must not get a
    # second say. The guard resolves once and sends the request to the address it checked.
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    def policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return port == server.port and address.is_loopback

    guard = None
    if kind == "curl":
        check = AddressCheck(policy=policy, resolve=rebinding_resolver)
        monkeypatch.setattr(_api, "AddressCheck", lambda **_: check)
    else:
        guard = PrivateAddressGuard(
            _inner_transport(kind), policy=policy, resolve=rebinding_resolver
        )
    (record,) = run_guarded([f"http://public.test:{server.port}/headers"], guard)
    assert record.ok, record
    assert calls == ["public.test"]
    assert server.stats.last_headers["host"] == f"public.test:{server.port}"
    assert record.final_url == f"http://public.test:{server.port}/headers"


def test_a_name_resolving_to_any_private_address_is_blocked() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    guard = PrivateAddressGuard(
        httpx.MockTransport(lambda request: httpx.Response(200)), resolve=mixed
    )
    (record,) = run_guarded(["http://mixed.test/"], guard)
    assert record.error is not None
    assert record.error.type == "blocked"
    assert "mixed.test resolves to 127.0.0.1" in record.error.message


def test_pinned_https_keeps_the_name_for_tls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    guard = PrivateAddressGuard(httpx.MockTransport(handler), resolve=public)
    (record,) = run_guarded(["https://example.test/a"], guard)
    assert record.ok
    (request,) = seen
    assert request.url.host == "93.184.215.14"
    assert request.headers["host"] == "example.test"
    assert request.extensions["sni_hostname"] == "example.test"
    assert request.headers["connection"] == "close"


def test_resolution_failure_under_no_private_is_a_dns_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    (record,) = collect(["http://nowhere.test/"], no_private=True)
    assert record.error is not None
    assert record.error.type == "dns"


# --- secrets in records -----------------------------------------------------------------------


def test_header_values_never_appear_in_records(server: LoopbackServer) -> None:
    # An invalid header value makes the request itself fail; the message must not quote it.
    urls = [server.url("/ok"), server.url("/garbage"), server.url("/reset"), "not a url"]
    records = collect(urls, headers=(("X-Api-Key", "k3y-SECRET-3"),), timeout=5)
    injected = (("X-Bad", "SECRET-4\r\nX-Injected: 1"),)
    records += collect([server.url("/ok")], headers=injected, timeout=5)
    text = "\n".join(r.to_json() for r in records)
    assert "SECRET" not in text


def test_a_header_value_with_cr_lf_fails_the_request(fresh_stats: LoopbackServer) -> None:
    injected = (("X-Bad", "SECRET-4\r\nX-Injected: 1"),)
    (record,) = collect([fresh_stats.url("/headers")], headers=injected, timeout=5)
    assert "x-injected" not in fresh_stats.stats.last_headers  # never split into two headers
    assert record.error is not None
    assert (record.ok, record.status) == (False, None)
    assert "SECRET" not in record.to_json()


def test_url_passwords_are_masked_in_error_messages(server: LoopbackServer) -> None:
    with_password = server.url("/garbage").replace("://", "://ann:pw-SECRET-5@")
    records = collect([with_password, "ftp://ann:pw-SECRET-6@example.test/"], timeout=5)
    for record in records:
        assert record.error is not None
        assert "SECRET" not in record.error.message
        assert "SECRET" in record.url  # the record's url stays exactly as given


def test_url_userinfo_is_sent_as_basic_auth_to_its_origin_only(
    server: LoopbackServer, other_server: LoopbackServer
) -> None:
    target = other_server.url("/headers")
    first = server.url("/headers").replace("://", "://ann:pw@")
    hop = server.url(f"/redirect-to?url={quote(target, safe='')}").replace("://", "://ann:pw@")
    (record,) = collect([first])
    assert echoed_headers(record, server)["authorization"] == "Basic YW5uOnB3"
    (record,) = collect([hop])
    assert "authorization" not in echoed_headers(record, other_server)


# Passwords are drawn from letters nothing else uses: any of them in the output is a leak.
_PASSWORD = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=400)
_AROUND = st.text("abc xyz.,:'/-", max_size=300)


@given(
    password=_PASSWORD,
    before=_AROUND,
    after=_AROUND,
    scheme=st.sampled_from(["http", "https", "ftp", "gopher"]),
    limit=st.integers(1, 900),
)
def test_no_cut_of_a_message_shows_any_of_a_url_password(
    password: str, before: str, after: str, scheme: str, limit: int
) -> None:
    text = f"{before} {scheme}://ann:{password}@host.test/p {after}"
    assert not set(excerpt(text, limit)) & set(password)
    assert len(excerpt(text, limit)) <= limit
    # classify cuts at 300: what it quotes is masked before it is cut.
    assert not set(classify(ValueError(text)).message) & set(password)


@given(
    secret=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=400), pad=st.integers(0, 400)
)
def test_no_cut_of_a_message_shows_any_of_a_header_value(secret: str, pad: int) -> None:
    message = classify(ValueError("x" * pad + f"bad header value {secret!r}"), [secret]).message
    assert not set(message) & set(secret)


def test_a_long_url_password_is_masked_in_the_cli_record_and_on_stderr(tmp_path) -> None:
    token = "T0KEN" * 60  # 300 characters: a cut at 200 used to drop the '@' and show the rest
    urls = tmp_path / "urls.txt"
    urls.write_text(f"ftp://ann:{token}@example.test/\nhttp://ann:{token}@/nohost\n")
    result = afetch_cli(str(urls))
    records = jsonl(result.stdout)
    assert [r["error"]["type"] for r in records] == ["invalid_url", "invalid_url"]
    for record in records:
        assert "T0KEN" not in record["error"]["message"], record["error"]["message"]
        assert "ann:***@" in record["error"]["message"]
    assert "T0KEN" not in result.stderr


def test_mask_url_and_redact() -> None:
    assert mask_url("http://a:b@h:1/p?q=http://c:d@e") == "http://a:***@h:1/p?q=http://c:***@e"
    assert mask_url("http://user@h/") == "http://user@h/"
    assert redact(json.dumps({"m": "token abcd"}), ["abcd"]) == '{"m": "token ***"}'


def test_the_timeout_covers_the_no_private_lookup(server: LoopbackServer) -> None:
    # A resolver slower than --timeout: the attempt ends at the deadline, as a timeout.
    import time

    from afetch._settings import Settings
    from afetch.attempt.fetcher import Fetcher
    from afetch.engine.curl import CurlEngine

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)  # far beyond the bound below: only the timeout ends it in time
        return ["127.0.0.1"]

    async def attempt() -> tuple[Record, float]:
        settings = Settings(timeout=0.5, no_private=True)
        engine = CurlEngine(settings)
        check = AddressCheck(policy=lambda address, port: True, resolve=slow)
        try:
            start = time.perf_counter()
            record, _ = await Fetcher(engine, settings, address_check=check).attempt(
                f"http://slow.test:{server.port}/ok"
            )
            return record, time.perf_counter() - start
        finally:
            await engine.aclose()

    record, took = asyncio.run(attempt())
    assert record.error is not None
    assert record.error.type == "timeout"
    assert took < 2.5


def test_a_runs_lookups_run_as_wide_as_its_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-private resolves on lookup threads of the run's own, -c of them (at most 64):
    the loop's default pool (6 threads on two cores) made a slow DNS the bottleneck."""
    from afetch.engine import guard

    lock, waiting, peak = threading.Lock(), [0], [0]
    release = threading.Event()

    def slow_getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        with lock:
            waiting[0] += 1
            peak[0] = max(peak[0], waiting[0])
            if waiting[0] == 24:
                release.set()
        release.wait(5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(guard.socket, "getaddrinfo", slow_getaddrinfo)

    async def lookups() -> list[BaseException | str | None]:
        _, engine, check = _api._open_fetcher(Settings(no_private=True, concurrency=24), None)
        assert check is not None
        names = [check.pin(f"h{i}.test", 80) for i in range(24)]
        try:
            return await asyncio.gather(*names, return_exceptions=True)
        finally:
            await _api._close(engine, check)

    answers = asyncio.run(lookups())
    assert peak[0] == 24  # all 24 waited in getaddrinfo together (6 before)
    assert all(isinstance(a, Blocked) for a in answers)  # and each answer was still checked
