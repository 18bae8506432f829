"""The fetch side on a hostile web, against the real loopback server: faults, deadlines, caps, TLS.

Every fault is checked through the default transport and through httpx-aiohttp's transport (when
installed), so the error types stay the same if the default transport changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from afetch import Record, Settings
from afetch._loopback import LoopbackServer
from afetch._loopback.routes import gzip_bomb
from afetch.engine.decode import PIECE
from tests.helpers import collect

TransportFactory = Callable[[Settings], httpx.AsyncBaseTransport | None]


def _aiohttp_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    from afetch.engine.tls import tls_verify

    return AiohttpTransport(verify=tls_verify(settings))


def _httpcore_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    from afetch.engine.tls import tls_verify

    return httpx.AsyncHTTPTransport(verify=tls_verify(settings), retries=0)


def _default_engine(settings: Settings) -> None:
    return None  # no transport: afetch's default engine (libcurl)


@pytest.fixture(params=["default", "httpcore", "aiohttp"])
def make_transport(request: pytest.FixtureRequest) -> TransportFactory:
    """Engines: afetch's default (libcurl), and through the httpx adapter httpx's own transport
    (httpcore) and httpx-aiohttp's (skipped if not installed): error types must not depend on
    which one runs."""
    if request.param == "aiohttp":
        pytest.importorskip("httpx_aiohttp")
        return _aiohttp_transport
    if request.param == "httpcore":
        return _httpcore_transport
    return _default_engine


def fetch_one(url: str, make_transport: TransportFactory, **options: object) -> Record:
    # One attempt: these tests are about what a single attempt ends as, not about retries.
    options.setdefault("retries", 0)
    settings = Settings(**options)  # type: ignore[arg-type]

    async def run() -> list[Record]:
        import afetch

        transport = make_transport(settings)
        try:
            return [r async for r in afetch.fetch([url], settings=settings, transport=transport)]
        finally:
            if transport is not None:
                await transport.aclose()

    (record,) = asyncio.run(run())
    return record


def error_type(record: Record) -> str | None:
    return None if record.error is None else record.error.type


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/huge-header", "protocol"),
        ("/garbage", "protocol"),
        ("/truncate", "protocol"),
        ("/reset-body", "protocol"),  # a body cut short by a reset is a truncated body
        ("/reset", "reset"),
        ("/loop", "too_many_redirects"),
    ],
)
def test_faults_are_classified(
    server: LoopbackServer, make_transport: TransportFactory, path: str, expected: str
) -> None:
    record = fetch_one(server.url(path), make_transport, timeout=10)
    assert error_type(record) == expected, record
    assert not record.ok


def test_truncated_body_keeps_the_bytes_received(
    server: LoopbackServer, make_transport: TransportFactory
) -> None:
    record = fetch_one(server.url("/truncate"), make_transport, timeout=10)
    assert (error_type(record), record.bytes, record.status) == ("protocol", 10, 200)


def test_gzip_body_is_counted_decoded(
    server: LoopbackServer, make_transport: TransportFactory
) -> None:
    record = fetch_one(server.url("/gzip-bomb?mb=4"), make_transport, timeout=10)
    assert record.ok
    assert record.bytes == 4 << 20


# --- deadlines --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drip?n=100&interval=0.2", "/hang"])
def test_timeout_is_a_deadline_for_the_whole_attempt(
    server: LoopbackServer, make_transport: TransportFactory, path: str
) -> None:
    # The drip sends a byte every 0.2 s: every read succeeds well within any per-read timeout,
    # yet the attempt as a whole must end at the deadline.
    started = time.monotonic()
    record = fetch_one(server.url(path), make_transport, timeout=1.0)
    elapsed = time.monotonic() - started
    assert error_type(record) == "timeout"
    # Upper bounds 5x the deadline (a loaded machine); the drip alone would take 20 s.
    assert 0.9 <= record.elapsed_ms / 1000 <= 5.0
    assert elapsed < 5.0


@contextlib.contextmanager
def unanswered_listener() -> Iterator[int]:
    """A port whose accept queue is full, so new connections are never established."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        # Fill the accept queue; further SYNs are dropped and connect() just waits.
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout_ends_a_connect_that_never_completes(
    make_transport: TransportFactory,
) -> None:
    with unanswered_listener() as port:
        started = time.monotonic()
        record = fetch_one(
            f"http://127.0.0.1:{port}/", make_transport, timeout=10, connect_timeout=0.5
        )
        elapsed = time.monotonic() - started
    assert error_type(record) == "timeout", record
    assert 0.4 <= elapsed < 3.0


# --- caps -------------------------------------------------------------------------------------


def test_max_size_refuses_a_declared_length_before_reading(
    server: LoopbackServer, make_transport: TransportFactory
) -> None:
    record = fetch_one(server.url("/ok?size=5000"), make_transport, max_size=1000)
    assert error_type(record) == "too_large"
    assert (record.status, record.bytes) == (200, 0)


def test_max_size_allows_a_body_of_exactly_that_size(
    server: LoopbackServer, make_transport: TransportFactory
) -> None:
    record = fetch_one(server.url("/ok?size=1000"), make_transport, max_size=1000)
    assert record.ok
    assert record.bytes == 1000


def test_max_size_leaves_the_other_headers_readable(
    server: LoopbackServer, make_transport: TransportFactory
) -> None:
    # The engine reads Content-Length for --max-size and Content-Type for the record from one
    # searched copy of the head: the record says what a run without the limit says.
    plain = fetch_one(server.url("/ok?size=1000"), make_transport)
    limited = fetch_one(server.url("/ok?size=1000"), make_transport, max_size=1000)
    assert plain.content_type is not None
    assert (limited.content_type, limited.http_version) == (plain.content_type, plain.http_version)


def test_max_size_stops_a_gzip_bomb_while_inflating(
    server: LoopbackServer, make_transport: TransportFactory
) -> None:
    # 64 MiB inflated from ~64 KB on the wire: the declared length passes, the decoded size not.
    record = fetch_one(server.url("/gzip-bomb?mb=64"), make_transport, max_size=1 << 20)
    assert error_type(record) == "too_large"
    assert (1 << 20) - PIECE < record.bytes <= (1 << 20)  # what was read within the cap


def test_a_gzip_bomb_never_inflates_more_than_a_piece_at_a_time(server: LoopbackServer) -> None:
    # httpx's own decoder inflates a whole network chunk at once (64 KiB of gzip is ~64 MiB).
    # tracemalloc sees the bytes objects zlib returns, so a chunk-at-once decoder fails this.
    gzip_bomb(256)  # built (and cached) by the server before measuring
    tracemalloc.start()
    try:
        (record,) = collect([server.url("/gzip-bomb?mb=256")], timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert record.ok
    assert record.bytes == 256 << 20
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture(scope="module")
def tls_server(tls_ca: tuple[object, Path]) -> Iterator[LoopbackServer]:
    ca, _ = tls_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "tls.test").configure_cert(context)  # type: ignore[attr-defined]
    with LoopbackServer(ssl=context) as running:
        yield running


def test_tls_with_an_unknown_ca_is_a_tls_error(
    tls_server: LoopbackServer, make_transport: TransportFactory
) -> None:
    record = fetch_one(tls_server.url("/ok"), make_transport, timeout=10)
    assert error_type(record) == "tls", record
    assert "certificate" in record.error.message.lower()  # type: ignore[union-attr]


def test_tls_ok_with_cacert(
    tls_server: LoopbackServer, tls_ca: tuple[object, Path], make_transport: TransportFactory
) -> None:
    record = fetch_one(tls_server.url("/ok"), make_transport, timeout=10, cacert=str(tls_ca[1]))
    assert record.ok, record
    assert record.bytes == 1024


def test_tls_ok_with_insecure(tls_server: LoopbackServer, make_transport: TransportFactory) -> None:
    record = fetch_one(tls_server.url("/ok"), make_transport, timeout=10, verify=False)
    assert record.ok, record


def test_plain_http_to_a_tls_port_is_not_a_crash(
    tls_server: LoopbackServer, make_transport: TransportFactory
) -> None:
    url = tls_server.url("/ok").replace("https://", "http://")
    record = fetch_one(url, make_transport, timeout=5)
    assert not record.ok
    assert error_type(record) in {"protocol", "reset", "timeout"}


def test_no_private_pinning_keeps_tls_verification_by_name(
    tls_server: LoopbackServer,
    tls_ca: tuple[object, Path],
    make_transport: TransportFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --no-private sends the request to the address it checked; the certificate must still be
    # verified against the name in the URL (SNI), whatever the engine.
    from afetch import _api
    from afetch.engine.guard import AddressCheck
    from afetch.engine.guard_transport import PrivateAddressGuard

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "tls.test"
        return ["127.0.0.1"]

    def check(**_: int) -> AddressCheck:
        return AddressCheck(policy=lambda address, port: True, resolve=resolve)

    settings = Settings(cacert=str(tls_ca[1]), no_private=True, timeout=10)
    inner = make_transport(settings)
    # The default engine gets the check from the fetcher; an httpx transport from the guard.
    monkeypatch.setattr(_api, "AddressCheck", check)
    guard = (
        None
        if inner is None
        else PrivateAddressGuard(inner, policy=lambda address, port: True, resolve=resolve)
    )

    async def run() -> list[Record]:
        import afetch

        url = f"https://tls.test:{tls_server.port}/ok"
        try:
            return [r async for r in afetch.fetch([url], settings=settings, transport=guard)]
        finally:
            if guard is not None:
                await guard.aclose()

    (record,) = asyncio.run(run())
    assert record.ok, record


# --- DNS --------------------------------------------------------------------------------------


def test_dns_failure_is_a_dns_error(
    monkeypatch: pytest.MonkeyPatch, make_transport: TransportFactory
) -> None:
    # No real lookup: the resolver every transport ends up calling fails for this one name.
    real = socket.getaddrinfo

    def fake(host: object, *args: object, **kwargs: object) -> object:
        if host in ("nowhere.test", b"nowhere.test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    record = fetch_one("http://nowhere.test:9/", make_transport, timeout=5)
    assert error_type(record) == "dns", record


def test_connection_refused_is_a_connect_error(make_transport: TransportFactory) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    record = fetch_one(f"http://127.0.0.1:{port}/", make_transport, timeout=5)
    assert error_type(record) == "connect", record
