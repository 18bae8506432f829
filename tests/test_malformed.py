"""Malformed responses from a raw-socket server: each engine gives the documented error type,
an honest message and an honest ``final_url``, the same on libcurl and on the httpx engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from afetch import Record, Settings
from tests.helpers import fetch_through
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
    return fetch_through(urls, engine(), settings=Settings(**options))  # type: ignore[arg-type]


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
@pytest.mark.parametrize("include", [(), ("headers",)], ids=["callbacks", "coroutine"])
def test_a_status_that_is_not_three_digits_is_protocol(
    raw: RawServer, engine: Engine, status: bytes, include: tuple[str, ...]
) -> None:
    # --include takes the fetcher's coroutine path; a plain fetch its callback path.
    url = raw.add([_head(status, b"Content-Length: 2") + b"hi"])
    record = fetch_one(url, engine, include=include)
    assert error_type(record) == "protocol", record
    assert record.status is None
    assert not record.ok


def test_a_status_line_without_a_reason_is_fine(raw: RawServer, engine: Engine) -> None:
    record = fetch_one(raw.add([b"HTTP/1.1 204\r\n\r\n"]), engine)
    assert (record.status, record.error) == (204, None)


# --- messages say what happened (issue 18, item 15) -------------------------------------------


@pytest.mark.parametrize("code", [23, 61, 100])
def test_libcurl_codes_without_a_message_get_words(code: int) -> None:
    from afetch._errors import classify
    from afetch.engine.curl.errors import _error

    error = classify(_error(code, "", head_seen=False))
    assert "libcurl error" not in error.message
    assert len(error.message) > 10


# --- redirects: the URL requested is the URL reported (issue 18, items 11 and 15) -------------


def _redirect(raw: RawServer, location: bytes) -> str:
    return raw.add([_head(b"302 Found", b"Location: " + location, b"Content-Length: 0")])


@pytest.mark.parametrize(
    ("location", "sent"),
    [
        ("/é/s/{ok}?q=é".encode(), "/%C3%A9/s/{ok}?q=%C3%A9"),  # UTF-8 bytes: as UTF-8
        ("/\xe9/s/{ok}".encode("latin-1"), "/%E9/s/{ok}"),  # not UTF-8: the bytes as they are
    ],
    ids=["utf-8", "latin-1"],
)
def test_a_raw_non_ascii_location_is_read_as_utf8_first(
    raw: RawServer, engine: Engine, location: bytes, sent: str
) -> None:
    ok = raw.add([OK]).rpartition("/")[2]
    url = _redirect(raw, location.replace(b"{ok}", ok.encode()))
    record = fetch_one(url, engine)
    expected = sent.format(ok=ok)
    assert record.final_url == f"http://127.0.0.1:{raw.port}{expected}"
    assert (record.status, record.redirects) == (200, 1), record
    assert expected in raw.targets


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("/a/%2e%2e/s/{ok}", "/s/{ok}"),
        ("/a/b/.%2E/%2E/../s/{ok}", "/s/{ok}"),
        ("/a/./s/{ok}?next=/../x", "/a/s/{ok}?next=/../x"),  # the query is not a path
        ("/a%2eb/s/{ok}", "/a%2Eb/s/{ok}"),  # not a dot segment; hex upper-cased, as libcurl
        ("/%7e%c3%a9/s/{ok}", "/%7E%C3%A9/s/{ok}"),
    ],
)
def test_dot_segments_are_removed_and_final_url_says_so(
    raw: RawServer, engine: Engine, path: str, sent: str
) -> None:
    ok = raw.add([OK]).rpartition("/")[2]
    expected = f"http://127.0.0.1:{raw.port}{sent.format(ok=ok)}"
    base = f"http://127.0.0.1:{raw.port}"
    direct = fetch_one(base + path.format(ok=ok), engine)
    redirected = fetch_one(_redirect(raw, path.format(ok=ok).encode()), engine)
    for record in (direct, redirected):
        assert (record.final_url, record.status) == (expected, 200), record
    assert raw.targets.count(sent.format(ok=ok)) == 2


@pytest.mark.parametrize("include", [(), ("headers",)], ids=["callbacks", "coroutine"])
def test_a_bad_status_without_a_body_is_protocol(
    raw: RawServer, engine: Engine, include: tuple[str, ...]
) -> None:
    record = fetch_one(raw.add([_head(b"2000 OK", b"Content-Length: 0")]), engine, include=include)
    assert (record.status, error_type(record)) == (None, "protocol"), record


# --- a head cut short is no response (found by tests/test_fuzz_responses.py) ------------------


@pytest.mark.parametrize(
    "script",
    [
        [b"HTTP/1.1 200 OK\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"],
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"],
    ],
)
def test_a_head_closed_before_its_blank_line_is_a_reset(
    raw: RawServer, engine: Engine, script: list[bytes]
) -> None:
    record = fetch_one(raw.add(script), engine, retries=0)
    assert (record.status, error_type(record)) == (None, "reset"), record


def test_broken_chunking_says_so(raw: RawServer, engine: Engine) -> None:
    script = [_head(b"200 OK", b"Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n"]
    record = fetch_one(raw.add(script), engine)
    assert error_type(record) == "protocol", record
    assert "chunk" in str(record.error), record
    assert "cut short" not in str(record.error)  # nothing was cut: the framing is wrong


# --- content codings not asked for (docs/hostile-web.md, --max-size) --------------------------


@pytest.mark.parametrize("coding", [b"zstd", b"x-foo"])
def test_a_coding_not_asked_for_is_as_documented(
    raw: RawServer, engine: Engine, coding: bytes
) -> None:
    """Both engines leave decoding to afetch's one decoder (engine/decode.py), which undoes
    gzip and deflate only: any other coding is counted as received, undecoded, on each."""
    script = [_head(b"200 OK", b"Content-Encoding: " + coding, b"Content-Length: 5") + b"hello"]
    record = fetch_one(raw.add(script), engine)
    assert (record.status, error_type(record), record.bytes) == (200, None, 5), record
