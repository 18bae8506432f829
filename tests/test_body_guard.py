"""Hostile bodies against the body consumers (--include body/json/title, --save-dir, --hash):
every record arrives, honest, in bounded time, on both engines (libcurl, and httpx's own
transport behind the adapter)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import http.server
import re
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import afetch
from afetch import Record, Settings
from afetch._include import _title_span, html_title
from afetch._loopback import LoopbackServer
from afetch._loopback.routes import gzip_bomb
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import fetch_through, serving

ENGINES = ["curl", "httpx"]


def fetch_one(url: str, engine: str, **options: object) -> Record:
    options.setdefault("retries", 0)
    settings = Settings(**options)  # type: ignore[arg-type]

    async def run() -> list[Record]:
        transport = None if engine == "curl" else httpx.AsyncHTTPTransport(retries=0)
        try:
            return [r async for r in afetch.fetch([url], settings=settings, transport=transport)]
        finally:
            if transport is not None:
                await transport.aclose()

    (record,) = asyncio.run(run())
    return record


# --- a compressed body far past the engine's buffer --------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("consumer", ["body", "json", "title", "save"])
def test_a_compressed_body_past_the_buffer_limit_is_read_whole(
    server: LoopbackServer, engine: str, consumer: str, tmp_path: Path
) -> None:
    # 3 MiB inflated from ~3 KB: libcurl delivered 1 MiB past a pause from inside the unpause
    # call, with no waiter yet, and the read stalled at 2 MiB until --timeout.
    options: dict[str, object] = (
        {"save_dir": str(tmp_path)} if consumer == "save" else {"include": (consumer,)}
    )
    record = fetch_one(server.url("/gzip-bomb?mb=3"), engine, timeout=10, **options)
    assert record.ok, record
    assert record.bytes == 3 << 20
    assert record.elapsed_ms < 5000


# --- the run never hangs: no record's work holds the loop, whatever the body --------------------


def _adversarial_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    """Path → (body, headers): bodies built to make the body consumers slow."""
    html = {"Content-Type": "text/html"}
    as_json = {"Content-Type": "application/json"}
    floats = b"[" + b"1.5," * ((1 << 20) // 4 - 2) + b"1.5]"  # just under --body-limit
    return {
        # The backtracking title regex: seconds on tens of KB of unclosed titles.
        "/unclosed-titles": (b"<title>" * (48 * 1024 // 7), html),
        "/unclosed-titles-big": (b"<title>" * ((1 << 20) // 7), html),
        "/closing-without-gt": (b"<title>" + b"</title " * ((1 << 20) // 8), html),
        # Linear, but a Python call per entity: ~200 ms for a MiB.
        "/entities": (b"<title>" + b"&amp;" * ((1 << 20) // 5) + b"</title>", html),
        # Python's punycode codec is quadratic (1.2 s for 128 KB).
        "/punycode": (
            b"a" * 60_000 + b"-" + b"b" * 4000,
            {"Content-Type": "text/html; charset=punycode"},
        ),
        "/utf-16": (
            ("<title>é</title>" * 60_000).encode("utf-16"),
            {"Content-Type": "text/html; charset=utf-16"},
        ),
        "/deep-json": (b"[" * (1 << 20), as_json),
        "/float-json": (floats, as_json),
        "/escapes-json": (b'"' + b"\\u00e9" * ((1 << 20) // 6 - 1) + b'"', as_json),
        "/gzip-json": (
            gzip.compress(b"[" + b'{"k": "v", "n": 1},' * 150_000 + b"0]"),
            {**as_json, "Content-Encoding": "gzip"},
        ),
        "/binary": (bytes(range(256)) * 4096, {"Content-Type": "text/html; charset=shift_jis"}),
        # 32 MiB from 32 KB: one 16 KiB read inflates to 16 MiB.
        "/gzip-bomb": (gzip_bomb(32), {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
    }


@contextlib.contextmanager
def _body_server(bodies: dict[str, tuple[bytes, dict[str, str]]]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body, headers = bodies[self.path]
            self.send_response(200)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def _loop_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The most CPU time (of the loop's thread) any one loop callback took: a worker thread's
    time is not counted, the loop's own time is whatever else the machine runs."""
    worst = [0.0]
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.Handle) -> None:
        start = time.thread_time()
        try:
            run(handle)
        finally:
            worst[0] = max(worst[0], time.thread_time() - start)

    with monkeypatch.context() as patch:
        patch.setattr(asyncio.events.Handle, "_run", timed)
        yield worst


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("keeping", [True, False], ids=["kept", "counted"])
def test_no_record_holds_the_loop_whatever_the_body(
    engine: str, keeping: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kept: every body consumer at once (each --include body key, --save-dir, --hash). Counted:
    # a plain run, whose libcurl transfers count the body without a coroutine.
    bodies = _adversarial_bodies()
    options: dict[str, object] = {"timeout": 30, "retries": 0, "concurrency": 4}
    if keeping:
        options.update(include=("body", "json", "title"), save_dir=str(tmp_path), hash_bodies=True)
    with _body_server(bodies) as base:
        urls = [base + path for path in bodies]
        # Once first, every body: imports (a codec, html, json) and thread pools start on first
        # use, and an import is not the per-record work this test bounds.
        fetch_all(urls, engine, **options)
        with _loop_cpu(monkeypatch) as worst:
            started = time.monotonic()
            records = fetch_all(urls, engine, **options)
            took = time.monotonic() - started
    assert sorted(r.url for r in records) == sorted(urls)
    assert all(r.ok for r in records), [r.error for r in records if not r.ok]
    assert worst[0] < 0.05, f"a loop callback took {worst[0] * 1000:.0f} ms of CPU"
    assert took < 25, took


def fetch_all(urls: list[str], engine: str, **options: object) -> list[Record]:
    # Made before the loop runs: its TLS context loads the CA bundle (~40 ms of CPU).
    transport = None if engine == "curl" else httpx.AsyncHTTPTransport(retries=0)
    return fetch_through(urls, transport, **options)


# --- the title: what the regex it replaces found, in linear time ----------------------------------

_OLD_TITLE = re.compile(rb"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TITLE_BITS = [b"<title", b"<TiTlE", b"<titles", b">", b"</title", b"</TITLE", b" ", b"\n", b"x"]


@given(st.lists(st.sampled_from(_TITLE_BITS) | st.binary(max_size=3), max_size=14))
def test_the_title_is_where_the_regex_found_it(bits: list[bytes]) -> None:
    data = b"".join(bits)
    match = _OLD_TITLE.search(data)
    assert _title_span(data) == (None if match is None else match.span(1))


@pytest.mark.parametrize(
    "body",
    [
        b"<title>" * (1 << 17),
        b"<title" + b" " * (1 << 20),
        b"<title>" + b"</title " * (1 << 17),
        b"<title>" + b"</title" + b"\t" * (1 << 20),
        b"<titles" * (1 << 17),
    ],
)
def test_the_title_of_a_hostile_megabyte_takes_milliseconds(body: bytes) -> None:
    start = time.thread_time()
    html_title(body, "text/html")
    # The regex took 28 s on 128 KB of "<title>"; the scan about a millisecond a MiB.
    assert time.thread_time() - start < 0.5


# --- a compressed stream cut short is a truncated body -----------------------------------------


def _truncated_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    text = bytes(range(256)) * 24  # 6 KB that compresses little: the cut is mid-stream
    return {
        "/gzip": (gzip.compress(text)[:15], {"Content-Encoding": "gzip"}),
        "/gzip-trailer": (gzip.compress(text)[:-8], {"Content-Encoding": "gzip"}),
        "/deflate": (zlib.compress(text)[:100], {"Content-Encoding": "deflate"}),
        "/raw-deflate": (zlib.compress(text, wbits=-15)[:100], {"Content-Encoding": "deflate"}),
        "/whole": (gzip.compress(text), {"Content-Encoding": "gzip"}),
    }


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "options",
    [{}, {"hash_bodies": True}, {"save_dir": "SAVE"}, {"include": ("body",)}],
    ids=["plain", "hash", "save", "body"],
)
def test_a_compressed_stream_cut_short_is_not_ok(
    engine: str, options: dict[str, object], tmp_path: Path
) -> None:
    # The HTTP body is complete (its Content-Length is met): only the gzip/deflate stream in it
    # stops early. libcurl's own decoding took that for a whole body ("ok", 4 of 6,144 bytes).
    if options.get("save_dir"):
        options = {"save_dir": str(tmp_path)}
    bodies = _truncated_bodies()
    with _body_server(bodies) as base:
        records = fetch_all([base + path for path in bodies], engine, retries=0, **options)
    by_path = {record.url.removeprefix(base): record for record in records}
    for path, record in by_path.items():
        if path == "/whole":
            assert (record.ok, record.bytes) == (True, 6144), record
            continue
        assert not record.ok, (path, record)
        assert record.error is not None
        assert (record.error.type, record.sha256, record.path) == ("protocol", None, None), path
        assert "truncated" in record.error.message
    if options.get("save_dir"):
        assert [p.name.endswith(".part") for p in tmp_path.rglob("*") if p.is_file()] == [False]


def test_the_cli_reads_a_hostile_title_within_its_timeout() -> None:
    # On main this record never came: 1 MiB of "<title>" held the loop for hours, past
    # --timeout, deaf to SIGTERM.
    bodies = {"/titles": (b"<title>" * ((1 << 20) // 7), {"Content-Type": "text/html"})}
    with _body_server(bodies) as base:
        started = time.monotonic()
        done = afetch_cli("-q", "--include", "title", "--timeout", "5", stdin=base + "/titles\n")
        took = time.monotonic() - started
    (record,) = jsonl(done.stdout)
    assert (record["ok"], record["title"], record["bytes"]) == (True, None, 1048572)
    assert took < 5, took


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("saving", [False, True], ids=["hash", "save"])
def test_a_body_inflated_over_many_turns_is_whole_and_in_order(
    engine: str, saving: bool, tmp_path: Path
) -> None:
    # Paused and resumed every MiB (libcurl delivers the held bytes again, the decoder must not
    # see them twice): the sha256 and the saved file say every byte came once, in order.
    # 8 MiB from ~10 KB, a numbered block every 64 KiB: one read inflates to many pieces.
    text = b"".join(b"%08d" % i + b"\0" * (65536 - 8) for i in range(128))
    bodies = {"/log": (gzip.compress(text), {"Content-Encoding": "gzip"})}
    options: dict[str, object] = {"hash_bodies": True}
    if saving:
        options["save_dir"] = str(tmp_path)
    with _body_server(bodies) as base:
        (record,) = fetch_all([base + "/log"], engine, retries=0, **options)
    assert (record.ok, record.bytes) == (True, len(text)), record
    assert record.sha256 == hashlib.sha256(text).hexdigest()
    if saving:
        assert record.path is not None
        assert Path(record.path).read_bytes() == text
