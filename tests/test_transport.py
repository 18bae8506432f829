"""The engines against real servers on 127.0.0.1: error mapping, limits, TLS, HTTP/2.

The default engine is libcurl (afetch.engine.curl); these tests pin that every fault route gives the
same error type as httpx's own transport (httpcore) through the httpx adapter, so the engine
cannot silently reclassify errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pycurl
import pytest

from afetch._loopback import LoopbackServer
from afetch._settings import Settings
from afetch.engine.base import Request
from afetch.engine.curl import CurlEngine, CurlError
from afetch.engine.curl.errors import _error
from afetch.engine.factory import open_engine
from afetch.engine.httpx_adapter import HttpxEngine
from tests.helpers import by_url, collect, transfer
from tests.hypercorn_server import text_app, tls_hypercorn

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


def test_the_default_engine_is_libcurl_and_a_transport_goes_through_the_adapter() -> None:
    async def engines() -> tuple[object, ...]:
        made = (
            open_engine(Settings()),
            open_engine(Settings(http2=True)),
            open_engine(Settings(), httpx.MockTransport(lambda request: httpx.Response(200))),
        )
        for engine in made:
            await engine.aclose()
        return tuple(type(engine) for engine in made)

    assert asyncio.run(engines()) == (CurlEngine, CurlEngine, HttpxEngine)


@pytest.mark.parametrize("transport", ["default", "httpcore"])
def test_fault_routes_map_to_the_same_error_types(server: LoopbackServer, transport: str) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}/"
    urls = [server.url(path) for path in FAULTS] + [refused]
    chosen = None if transport == "default" else _httpcore(Settings())
    # Retried as a run would, without the default's pauses (up to 1.5 s after /hang's deadlines).
    options = {"timeout": 1.0, "concurrency": 8, "backoff": 0.01}
    records = by_url(collect(urls, transport=chosen, **options))
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
    """The engine opens at most its pool (``-c`` in use plus the idle ones it keeps: see
    engine/connections.py); ``-c`` itself is the scheduler's bound (test_integration.py)."""
    from afetch.engine.connections import pool_size, settings_per_request

    settings = Settings(concurrency=2)
    limit = pool_size(2, per_request=settings_per_request(settings))
    requests = limit + 12

    async def run(server: LoopbackServer) -> None:
        engine = CurlEngine(settings)
        try:

            async def one(i: int) -> None:
                await transfer(engine, Request("GET", server.url(f"/sleep/150?i={i}"), ()))

            await asyncio.gather(*(one(i) for i in range(requests)))
        finally:
            await engine.aclose()

    # Its own server: hung requests of other tests would count as in flight on the shared one.
    with LoopbackServer() as server:
        asyncio.run(run(server))
        assert server.stats.max_in_flight == limit
        assert server.stats.requests == requests


def test_an_abandoned_transfer_frees_its_handle_and_the_engine_goes_on(
    server: LoopbackServer,
) -> None:
    async def run() -> tuple[int, int]:
        engine = CurlEngine(Settings(concurrency=2))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await transfer(engine, Request("GET", server.url("/hang"), ()))
            response, body = await transfer(engine, Request("GET", server.url("/ok"), ()))
            return response.status, len(body)
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == (200, 1024)


def test_a_large_body_read_in_pieces_is_complete_and_bounded(server: LoopbackServer) -> None:
    # Read slowly: the sink holds the transfer (libcurl pauses) after every MiB, and resumes
    # it on a later turn.
    async def run() -> tuple[int, int]:
        engine = CurlEngine(Settings())
        try:
            url = server.url("/ok?size=8000000")
            response, body = await transfer(engine, Request("GET", url, ()), hold_every=1 << 20)
            return len(body), response.bytes_read
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == (8_000_000, 8_000_000)


@pytest.mark.parametrize(
    ("code", "head_seen", "expected"),
    [
        (6, False, "dns"),
        (7, False, "connect"),
        (28, False, "timeout"),
        (60, False, "tls"),
        (52, False, "reset"),
        (56, False, "reset"),
        (56, True, "protocol"),  # a reset after the head is a truncated body
        (18, True, "protocol"),
        (1, False, "protocol"),  # "Received HTTP/0.9 when not allowed"
        (97, False, "proxy"),
        (99999, False, "other"),
    ],
)
def test_libcurl_codes_map_to_error_types(code: int, head_seen: bool, expected: str) -> None:
    from afetch._errors import classify

    error = _error(code, "message from libcurl", head_seen=head_seen)
    assert classify(error).type == expected
    assert classify(error).message.endswith("message from libcurl")
    if expected not in ("protocol",):
        assert isinstance(error, CurlError)


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


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """hypercorn on 127.0.0.1 with a trustme certificate (h2 and http/1.1 over ALPN)."""
    pytest.importorskip("trustme")
    pytest.importorskip("hypercorn")
    with tls_hypercorn(text_app, tmp_path_factory.mktemp("tls")) as (url, ca_path):
        yield f"{url}/", ca_path


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


def test_trailers_after_an_empty_chunked_body_are_not_headers() -> None:
    # A trailer must not pose as a header: not as Content-Type, not as a Location to follow.
    body = (
        b"HTTP/1.1 302 Found\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
        b"0\r\nLocation: http://127.0.0.1:1/evil\r\nContent-Type: evil/x\r\n\r\n"
    )
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(body)
                done.wait(5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        (record,) = collect([f"http://127.0.0.1:{listener.getsockname()[1]}/"], retries=0)
    finally:
        done.set()
        thread.join(5)
        listener.close()
    assert (record.status, record.redirects, record.content_type) == (302, 0, "text/plain")


class _FakeLoop:
    """Records the wake-ups the engine asks for; time stands still unless moved."""

    def __init__(self, real: asyncio.AbstractEventLoop) -> None:
        self.real = real  # what the handles belong to (cancelling one tells its loop)
        self.now = 100.0
        self.soon: list[object] = []
        self.at: list[tuple[float, object]] = []

    def time(self) -> float:
        return self.now

    def call_soon(self, callback: object) -> asyncio.Handle:
        self.soon.append(callback)
        return asyncio.Handle(lambda: None, (), self.real)

    def call_at(self, when: float, callback: object) -> asyncio.TimerHandle:
        self.at.append((when, callback))
        return asyncio.TimerHandle(when, lambda: None, (), self.real)


def test_a_batch_of_transfers_is_added_without_a_timer_callback_per_add() -> None:
    """libcurl calls its timer back after every add ("now"), each call through pycurl costing
    more than the add: a batch is added with the callback unset, then one wake-up is asked
    for; every transfer of the batch still runs to its end."""

    async def main(server: LoopbackServer) -> tuple[list[int], list[object]]:
        engine = CurlEngine(Settings(concurrency=10))
        told: list[int] = []
        on_timer = engine._on_timer

        def counted(ms: int) -> None:
            told.append(ms)
            on_timer(ms)

        engine._on_timer = counted  # type: ignore[method-assign]
        engine._multi.setopt(pycurl.M_TIMERFUNCTION, counted)
        loop = asyncio.get_running_loop()
        done: list[asyncio.Future[object]] = []
        try:
            for n in range(10):
                over = loop.create_future()
                done.append(over)
                request = Request("GET", server.url(f"/ok?n={n}"), (("Accept", "*/*"),))
                engine.start_transfer(
                    request, on_done=lambda r, e, over=over: over.set_result(e or r.status)
                )
            told.clear()
            engine._add_pending()  # the batch (due on the next turn) added now
            adds_told = list(told)
            return adds_told, list(await asyncio.wait_for(asyncio.gather(*done), 30))
        finally:
            await engine.aclose()

    with LoopbackServer() as server:
        adds_told, statuses = asyncio.run(main(server))
    assert adds_told == [0]  # one wake-up asked for, not one per add
    assert statuses == [200] * 10


def test_libcurl_timer_requests_share_one_wake_up_no_later_than_asked() -> None:
    async def main() -> _FakeLoop:
        engine = CurlEngine(Settings())
        real_loop = engine._loop
        fake = _FakeLoop(real_loop)
        engine._loop = fake  # type: ignore[assignment]
        try:
            engine._on_timer(5000)  # a wake-up in 5 s
            engine._on_timer(9000)  # later: the 5 s one answers it too
            engine._on_timer(-1)  # "no timeout": the pending wake-up stays
            engine._on_timer(200)  # earlier: replaces it
            engine._on_timer(0)  # now: a call_soon replaces it
            engine._on_timer(0)  # and answers every later request this turn...
            engine._on_timer(50)
            engine._timer, engine._timer_soon = None, False  # ... until it has run
            engine._on_timer(50)
        finally:
            engine._loop = real_loop
            await engine.aclose()
        return fake

    fake = asyncio.run(main())
    assert [when - 100.0 for when, _ in fake.at] == pytest.approx([5.0, 0.2, 0.05])
    assert len(fake.soon) == 1
