"""Malformed responses from a raw-socket server: each engine gives the documented error type,
an honest message and an honest ``final_url``, the same on libcurl and on the httpx engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

import afetch
from afetch import Record, Settings
from tests.raw_server import RawServer

Engine = Callable[[], httpx.AsyncBaseTransport | None]


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


@pytest.fixture(params=["curl", "httpx"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """afetch's default engine (libcurl), and the httpx fallback engine (its own transport)."""
    if request.param == "httpx":
        return lambda: httpx.AsyncHTTPTransport(retries=0)
    return lambda: None


def fetch(urls: list[str], engine: Engine, **options: object) -> list[Record]:
    settings = Settings(**options)  # type: ignore[arg-type]

    async def run() -> list[Record]:
        transport = engine()
        try:
            return [r async for r in afetch.fetch(urls, settings=settings, transport=transport)]
        finally:
            if transport is not None:
                await transport.aclose()

    return asyncio.run(run())


def fetch_one(url: str, engine: Engine, **options: object) -> Record:
    options.setdefault("timeout", 5.0)
    (record,) = fetch([url], engine, **options)
    return record


def error_type(record: Record) -> str | None:
    return None if record.error is None else record.error.type


def _head(status: bytes = b"200 OK", *headers: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


OK = _head(b"200 OK", b"Content-Length: 2", b"Connection: close") + b"hi"


# --- oversized heads: protocol, not a reset to retry (issue 18, item 10) ----------------------


@pytest.mark.parametrize(
    "head",
    [
        # 400 headers of 1 KB: over libcurl's 300 KB for a whole head (its "receive error").
        _head(b"200 OK", *(b"X-H%d: %s" % (i, b"a" * 1000) for i in range(400))),
        # One header of 200 KB: over libcurl's 100 KB for one header (CURLE_TOO_LARGE).
        _head(b"200 OK", b"X-Huge: " + b"a" * 200_000, b"Content-Length: 0"),
    ],
    ids=["many-headers", "one-huge-header"],
)
def test_oversized_headers_are_protocol_and_not_retried(
    raw: RawServer, engine: Engine, head: bytes
) -> None:
    record = fetch_one(raw.add([head]), engine, retries=3, backoff=0.01)
    assert error_type(record) == "protocol", record
    assert record.attempts == 1
    assert "libcurl error" not in str(record.error)


# --- a status code is three digits (issue 18, item 15) ----------------------------------------


@pytest.mark.parametrize(
    "status", [b"20000000000000000000 OK", b"2000 OK", b"20 OK", b"2x0 OK", b"099 Low", b"200OK"]
)
def test_a_status_that_is_not_three_digits_is_protocol(
    raw: RawServer, engine: Engine, status: bytes
) -> None:
    record = fetch_one(raw.add([_head(status, b"Content-Length: 2") + b"hi"]), engine)
    assert error_type(record) == "protocol", record
    assert record.status is None
    assert not record.ok


def test_a_status_line_without_a_reason_is_fine(raw: RawServer, engine: Engine) -> None:
    record = fetch_one(raw.add([b"HTTP/1.1 204\r\n\r\n"]), engine)
    assert (record.status, record.error) == (204, None)


# --- messages say what happened (issue 18, item 15) -------------------------------------------


@pytest.mark.parametrize("code", [23, 61, 100])
def test_libcurl_codes_without_a_message_get_words(code: int) -> None:
    from afetch._curl import _error
    from afetch._errors import classify

    error = classify(_error(code, "", head_seen=False))
    assert "libcurl error" not in error.message
    assert len(error.message) > 10
