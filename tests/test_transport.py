"""The default transport against real servers on 127.0.0.1: error mapping, limits, TLS, HTTP/2.

The default HTTP/1.1 transport is afetch's own aiohttp-backed one; these tests pin that every
fault route gives the same error type as httpx's own transport (httpcore) did before, so the
speed change cannot silently reclassify errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from afetch._loopback import LoopbackServer
from afetch._settings import Settings
from afetch._transport import AiohttpTransport, default_transport
from tests.helpers import by_url, collect

# Route → the error type every transport must give. A reset after the headers is a truncated
# body (`protocol`), whichever transport noticed it (see _fetcher.Fetcher._read_body).
FAULTS = {
    "/reset": "reset",
    "/reset-body": "protocol",
    "/truncate": "protocol",
    "/garbage": "protocol",
    "/huge-header": "protocol",
    "/hang": "timeout",
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _httpcore(settings: Settings) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(retries=0)


def test_default_http1_transport_is_aiohttp_and_http2_is_httpx() -> None:
    assert isinstance(default_transport(Settings()), AiohttpTransport)
    assert isinstance(default_transport(Settings(http2=True)), httpx.AsyncHTTPTransport)


@pytest.mark.parametrize("transport", ["default", "httpcore"])
def test_fault_routes_map_to_the_same_error_types(server: LoopbackServer, transport: str) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}/"
    urls = [server.url(path) for path in FAULTS] + [refused]
    chosen = None if transport == "default" else _httpcore(Settings())
    records = by_url(collect(urls, transport=chosen, timeout=1.0, concurrency=8))
    got = {path: records[server.url(path)].error for path in FAULTS}
    assert {path: error and error.type for path, error in got.items()} == FAULTS
    refused_error = records[refused].error
    assert refused_error is not None
    assert refused_error.type == "connect"


def test_a_reset_keeps_what_was_received(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/reset-body")], timeout=5.0)
    assert (record.status, record.bytes) == (200, 1000)
    assert record.error is not None
    assert record.error.type == "protocol"
    assert "reset" in record.error.message


def test_gzip_is_decoded_and_counted(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/gzip-bomb?mb=1")])
    assert (record.status, record.bytes, record.error) == (200, 1 << 20, None)


def test_connections_never_exceed_the_limit() -> None:
    async def run(server: LoopbackServer) -> None:
        transport = AiohttpTransport(max_connections=2)
        try:

            async def one(i: int) -> None:
                url = server.url(f"/sleep/150?i={i}")
                response = await transport.handle_async_request(httpx.Request("GET", url))
                await response.aread()
                await response.aclose()

            await asyncio.gather(*(one(i) for i in range(8)))
        finally:
            await transport.aclose()

    # Its own server: hung requests of other tests would count as in flight on the shared one.
    with LoopbackServer() as server:
        asyncio.run(run(server))
        assert server.stats.max_in_flight == 2


def test_concurrency_sets_the_connection_limit() -> None:
    transport = default_transport(Settings(concurrency=7))
    assert isinstance(transport, AiohttpTransport)
    assert transport.max_connections == 7


# --- HTTP/1.0 -----------------------------------------------------------------------------


@pytest.fixture
def http10_server() -> Iterator[str]:
    """A server that answers every request with HTTP/1.0 and closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    done.set()
    thread.join()
    listener.close()


def test_http_version_comes_from_the_response(http10_server: str) -> None:
    (record,) = collect([http10_server])
    assert (record.status, record.http_version, record.bytes) == (200, "HTTP/1.0", 3)


def test_http_version_of_an_http11_response(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/ok")])
    assert record.http_version == "HTTP/1.1"


# --- TLS and HTTP/2 -----------------------------------------------------------------------


async def _asgi_app(scope: dict, receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    body = scope["http_version"].encode()
    await send(  # type: ignore[operator]
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """hypercorn on 127.0.0.1 with a trustme certificate (h2 and http/1.1 over ALPN)."""
    trustme = pytest.importorskip("trustme")
    pytest.importorskip("hypercorn")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_path = folder / "ca.pem"
    key_path = folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(key_path))
    port = _closed_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = str(key_path)
    config.keyfile = str(key_path)
    config.loglevel = "WARNING"
    config.accesslog = None
    config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(
            serve(_asgi_app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        ),
        daemon=True,
    )
    thread.start()
    context = ssl.create_default_context(cafile=str(ca_path))
    for _ in range(100):
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            break
        threading.Event().wait(0.05)
    yield f"https://127.0.0.1:{port}/", ca_path
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)


def test_http2_against_a_real_h2_server(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_path = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    (record,) = collect([url], http2=True)
    assert (record.status, record.error, record.http_version) == (200, None, "HTTP/2")
    assert record.bytes == len(b"2")


def test_tls_is_verified_by_default(tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    records = collect([url, url + "h2"], concurrency=2)
    for record in records:
        assert record.error is not None
        assert record.error.type == "tls"
    (h2_record,) = collect([url], http2=True)
    assert h2_record.error is not None
    assert h2_record.error.type == "tls"


def test_trusted_certificate_over_http11(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_path = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    (record,) = collect([url])
    assert (record.status, record.error, record.http_version) == (200, None, "HTTP/1.1")


@pytest.mark.parametrize("http2", [False, True])
def test_insecure_skips_verification(tls_server: tuple[str, Path], http2: bool) -> None:
    url, _ = tls_server
    (record,) = collect([url], verify=False, http2=http2)
    assert (record.status, record.error) == (200, None)
    assert record.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


def test_cli_http2_and_insecure(tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    done = subprocess.run(
        [sys.executable, "-m", "afetch", "--http2", "-k", "--no-progress", "-q", "-"],
        input=url + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"http_version":"HTTP/2"' in done.stdout


# --- aiohttp exceptions → httpx exceptions → error types ------------------------------------
# Paths the loopback server cannot produce without DNS or a network (no real name is ever looked
# up in the tests): aiohttp's exception objects are built by hand and go through the same
# re-raise the transport uses.


def _aiohttp_cases() -> list[tuple[str, type[httpx.HTTPError], BaseException]]:
    import errno

    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("example.test", 80, False, True, None, None, None, None)
    return [
        (
            "dns",
            httpx.ConnectError,
            aiohttp.ClientConnectorDNSError(
                key, socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            ),
        ),
        (
            "connect",
            httpx.ConnectError,
            aiohttp.ClientConnectorError(
                key, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            ),
        ),
        (
            "tls",
            httpx.ConnectError,
            aiohttp.ClientConnectorCertificateError(
                key, ssl.SSLCertVerificationError(1, "certificate verify failed")
            ),
        ),
        ("timeout", httpx.ConnectTimeout, aiohttp.ConnectionTimeoutError("connect timed out")),
        ("timeout", httpx.ReadTimeout, aiohttp.SocketTimeoutError("read timed out")),
        ("reset", httpx.WriteError, aiohttp.ClientOSError(errno.ECONNRESET, "reset by peer")),
        ("reset", httpx.RemoteProtocolError, aiohttp.ServerDisconnectedError()),
    ]


@pytest.mark.parametrize(
    ("expected", "httpx_type", "raised"),
    _aiohttp_cases(),
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_aiohttp_exceptions_map_to_httpx_and_error_types(
    expected: str, httpx_type: type[httpx.HTTPError], raised: BaseException
) -> None:
    from afetch._errors import classify
    from afetch._transport import _reraise

    request = httpx.Request("GET", "http://example.test/")

    def fail() -> None:
        try:
            raise raised
        except Exception as exc:
            _reraise(exc, request)

    with pytest.raises(httpx_type) as caught:
        fail()
    assert caught.value.__cause__ is raised
    assert classify(caught.value).type == expected
