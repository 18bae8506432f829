"""The one attempt machine (afetch.attempt.machine) through its two entries: Fetcher.start (told
through a callback) and Fetcher.attempt (a future around it). What it does with every fault of
the loopback server, --hash and --cache (cold, then warm), failures before any transfer, and a
run that survives what goes wrong in a callback."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import afetch
from afetch._loopback import LoopbackServer
from afetch._record import Record
from afetch._settings import Settings
from afetch.attempt.fetcher import Fetcher, ServerHints
from afetch.cache import Index, Validators, flush
from afetch.engine.curl import CurlEngine
from afetch.engine.httpx_adapter import HttpxEngine
from afetch.schedule.run import Run
from tests.helpers import collect

# Every kind of answer the fault server gives, and what the fetcher does with it (redirects,
# credentials, limits, retry hints, failures before and after the head).
ROUTES = [
    "/ok",
    "/ok?size=0",
    "/ok?size=200000",
    "/status/204",
    "/status/304",
    "/status/404",
    "/status/503",
    "/retry-after/a/5?after=7",
    "/redirect/3",
    "/redirect-to?status=303&url=/ok",
    "/redirect-to?status=308&url=/status/201",
    "/redirect-to?url=/ok&size=2000000",  # a redirect's body is not read: over max_size is fine
    "/redirect-to?status=302&url=ftp://127.0.0.1/x",
    "/redirect-to?status=301&url=http://[bad",
    "/loop",
    "/truncate",
    "/reset-body",
    "/reset",
    "/garbage",
    "/huge-header",
    "/gzip-bomb?mb=4",
    "/hang",
    "/headers",
]


def _comparable(record: Record) -> Record:
    # Times differ between two attempts, and libcurl's messages quote them.
    error = record.error
    if error is not None:
        error = dataclasses.replace(error, message=re.sub(r"\d+", "N", error.message))
    return dataclasses.replace(record, elapsed_ms=0.0, started_at="", error=error)


async def _both_entries(
    url: str, *, engine: str = "curl", **options: Any
) -> tuple[tuple[Record, Any], tuple[Record, Any]]:
    """The record through attempt(), then through start() (one after the other: a cache is
    warm for the second), each on an engine of its own (no connection shared)."""
    settings = Settings(**options)
    records = []
    for entry in ("attempt", "start"):
        if engine == "curl":
            made: Any = CurlEngine(settings)
        else:
            made = HttpxEngine(httpx.AsyncHTTPTransport(retries=0), settings, owned=True)
        fetcher = Fetcher(made, settings)
        try:
            if entry == "attempt":
                records.append(await fetcher.attempt(url))
                continue
            told: asyncio.Future[tuple[Any, Record, str | None]] = (
                asyncio.get_running_loop().create_future()
            )
            assert fetcher.start(url, lambda *args, told=told: told.set_result(args), "token")
            token, record, retry_after = await told
            assert token == "token"
            records.append((record, retry_after))
        finally:
            await made.aclose()
    return records[0], records[1]


@pytest.mark.parametrize("engine", ["curl", "httpx"])
@pytest.mark.parametrize("route", ROUTES)
def test_both_entries_give_the_same_record(server: LoopbackServer, route: str, engine: str) -> None:
    options = {"timeout": 1.0, "max_size": 1_000_000, "max_redirects": 5, "hash_bodies": True}
    url = server.url(route.replace("/a/", f"/{engine}/"))  # a retry counter of its own
    (first, first_retry), (second, second_retry) = asyncio.run(
        _both_entries(url, engine=engine, **options)
    )
    assert _comparable(second) == _comparable(first)
    assert second_retry == first_retry
    if route.startswith("/retry-after"):
        assert second_retry == ServerHints("7")  # the comparison above compared something
    if first.ok and first.status == 200:
        assert first.sha256 is not None


# Resources that answer conditional requests: fetched twice, cold (stored) then warm (a 304).
CACHE_ROUTES = [
    "/etag/cb",
    "/last-modified/cb",
    "/redirect-to?url=/etag/cb-redirected",
    "/redirect-to?status=303&url=/last-modified/cb-303",
]


def test_the_hash_is_the_bodys() -> None:
    with LoopbackServer() as server:
        (_, _), (fast, _) = asyncio.run(
            _both_entries(server.url("/ok?size=5000"), hash_bodies=True)
        )
        (_, _), (empty, _) = asyncio.run(_both_entries(server.url("/status/204"), hash_bodies=True))
    assert fast.sha256 == hashlib.sha256(b"x" * 5000).hexdigest()
    assert fast.bytes == 5000
    assert empty.sha256 == hashlib.sha256(b"").hexdigest()  # a 2xx without a body


@pytest.mark.parametrize("route", CACHE_ROUTES)
@pytest.mark.parametrize("hashed", [False, True])
def test_the_cache_is_used_warm(
    server: LoopbackServer, tmp_path: Path, route: str, hashed: bool
) -> None:
    url = server.url(route.replace("/cb", f"/cb-{hashed}-{tmp_path.name}"))
    options: dict[str, Any] = {"timeout": 1.0, "hash_bodies": hashed, "cache_dir": str(tmp_path)}
    (cold, _), (warm, _) = asyncio.run(_both_entries(url, **options))
    assert (cold.not_modified, warm.not_modified) == (False, True)
    assert (cold.status, warm.status) == (200, 304)
    assert (cold.sha256 is not None) is hashed
    assert flush(10)


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("not a url", {}),
        ("http://u:secret@127.0.0.1:1/", {}),  # refused: the message must not show the password
        ("http://127.0.0.1:1/", {"headers": (("X-Key", "secret\r\nInjected: 1"),)}),
        ("http://127.0.0.1:1/", {"method": "DELETE"}),  # the record says the method
        ("http://127.0.0.1:1/", {"follow_redirects": False, "timeout": None}),
    ],
)
def test_failures_before_any_transfer(url: str, options: dict[str, Any]) -> None:
    (slow, _), (fast, _) = asyncio.run(_both_entries(url, **options))
    assert slow.error is not None
    assert _comparable(fast) == _comparable(slow)
    assert "secret" not in slow.error.message


def test_a_url_with_credentials_redirected_to_another_origin(server: LoopbackServer) -> None:
    with LoopbackServer() as other:
        elsewhere = other.url("/headers")
        url = server.url(f"/redirect-to?url={elsewhere}").replace("://", "://u:p@", 1)
        (slow, _), (fast, _) = asyncio.run(_both_entries(url))
    assert _comparable(fast) == _comparable(slow)
    assert fast.final_url == elsewhere
    assert fast.redirects == 1


def test_done_is_never_called_from_inside_start() -> None:
    async def run() -> tuple[bool, Record]:
        settings = Settings()
        engine = CurlEngine(settings)
        fetcher = Fetcher(engine, settings)
        told: list[Record] = []
        finished = asyncio.Event()

        def done(token: object, record: Record, hints: ServerHints | None) -> None:
            told.append(record)
            finished.set()

        try:
            fetcher.start("not a url", done, None)  # fails at once, yet is told later
            early = bool(told)
            await asyncio.wait_for(finished.wait(), 5)
            return early, told[0]
        finally:
            await engine.aclose()

    early, record = asyncio.run(run())
    assert not early
    assert record.error is not None
    assert record.error.type == "invalid_url"


@pytest.mark.parametrize(
    ("options", "counted"),
    [
        ({"cache_dir": "CACHE"}, True),
        ({"hash_bodies": True}, True),
        ({"cache_dir": "CACHE", "hash_bodies": True, "ordered": True}, True),
        ({"include": ("headers", "body", "tls")}, True),
        ({"save_dir": "SAVE"}, False),  # awaited: a stopped run removes partial files
        ({"save_dir": "SAVE", "hash_bodies": True}, False),
    ],
)
def test_which_options_the_scheduler_runs_on_callbacks_alone(
    tmp_path: Any, options: dict[str, Any], counted: bool
) -> None:
    options = {
        key: str(tmp_path / value) if key.endswith("_dir") else value
        for key, value in options.items()
    }

    async def counts() -> bool:
        settings = Settings(**options)
        engine = CurlEngine(settings)
        try:
            return Fetcher(engine, settings).counts
        finally:
            await engine.aclose()

    assert asyncio.run(counts()) is counted


def test_the_httpx_adapter_runs_the_same_machine() -> None:
    async def run() -> tuple[bool, Record]:
        settings = Settings()
        mock = httpx.MockTransport(lambda request: httpx.Response(200, content=b"abc"))
        fetcher = Fetcher(HttpxEngine(mock, settings), settings)
        told: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        fetcher.start("http://127.0.0.1/", lambda _, record, __: told.set_result(record), None)
        return fetcher.counts, await told

    counts, record = asyncio.run(run())
    assert counts
    assert (record.status, record.bytes) == (200, 3)


def test_a_failure_in_a_callback_ends_the_run_instead_of_hanging(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempted = Run._attempted
    calls = 0

    def failing(self: Run, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("broken scheduler")
        attempted(self, *args)

    monkeypatch.setattr(Run, "_attempted", failing)
    urls = [server.url(f"/ok?i={i}") for i in range(20)]

    async def run() -> list[Record]:
        async with asyncio.timeout(30):
            return [r async for r in afetch.fetch(urls, concurrency=4)]

    with pytest.raises(RuntimeError, match="broken scheduler"):
        asyncio.run(run())


def test_a_stopped_run_drops_attempts_in_flight(server: LoopbackServer) -> None:
    async def run() -> list[Record]:
        stop = asyncio.Event()
        urls = [server.url("/ok")] * 3 + [server.url("/hang")] * 5
        records = []
        async for record in afetch.fetch(urls, concurrency=8, stop=stop):
            records.append(record)
            if len(records) == 3:
                stop.set()
        return records

    records = asyncio.run(asyncio.wait_for(run(), 10))
    assert [r.status for r in records] == [200, 200, 200]
    assert server.stats.in_flight == 0 or _eventually(lambda: server.stats.in_flight == 0)


def _eventually(check: Any, seconds: float = 5.0) -> bool:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_plain_runs_still_give_one_record_per_url(server: LoopbackServer) -> None:
    routes = ["/ok", "/redirect/2", "/status/500", "/truncate", "/reset", "not a url"] * 5
    urls = [server.url(r) if r.startswith("/") else r for r in routes]
    records = collect(urls, concurrency=4, timeout=2.0)
    assert sorted(r.url for r in records) == sorted(urls)


def test_a_record_that_cannot_be_built_is_still_one_record(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of afetch's own while describing an attempt: the URL still gets its record (type
    other), and the run does not wait for an attempt nobody finishes."""

    def broken(*args: Any) -> Record:
        raise ValueError("no record today")

    monkeypatch.setattr("afetch.attempt.outcome.new_record", broken)
    urls = [server.url(f"/ok?i={i}") for i in range(10)]

    async def run() -> list[Record]:
        async with asyncio.timeout(30):  # a lost attempt would hang the run
            return [r async for r in afetch.fetch(urls, concurrency=3)]

    records = asyncio.run(run())
    assert sorted(r.url for r in records) == sorted(urls)
    assert {r.error.type for r in records if r.error is not None} == {"other"}
    assert all(r.error is not None for r in records)


def test_a_tampered_cache_entry_cannot_inject_a_header(
    server: LoopbackServer, tmp_path: Path
) -> None:
    url = server.url("/etag/tampered")
    index = Index(str(tmp_path))
    index.store(url, Validators('"a"\r\nX-Injected: 1', None))  # as a hostile file could hold
    index.close()
    (slow, _), (fast, _) = asyncio.run(_both_entries(url, cache_dir=str(tmp_path)))
    assert fast.error is not None
    assert _comparable(fast) == _comparable(slow)
    assert "line break" in fast.error.message
    assert flush(10)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ([b"HTTP/1.1 200 OK\r\n", b'ETag: "a"\r\n', b"Last-Modified: Tue\r\n"], ('"a"', "Tue")),
        (
            [b"HTTP/1.1 200 OK\r\n", b'etag:  "b" \r\n', b"LAST-MODIFIED:x\r\n", b'ETag: "c"\r\n'],
            ('"b"', "x"),
        ),
        (
            [b"HTTP/1.1 304 OK\r\n", b"Expires: 0\r\n", b"Link: <x>\r\n", b"E\r\n", b"\n"],
            (None, None),
        ),
        (
            [
                b"HTTP/1.1 103 Early\r\n",
                b'ETag: "early"\r\n',
                b"\r\n",
                b"HTTP/1.1 200 OK\r\n",
                b"Etagx: 1\r\n",
                b"last-modified:\r\n",
            ],
            (None, ""),
        ),
        ([b"HTTP/1.1 200 OK\r\n"], (None, None)),
    ],
)
def test_header_look_ups_agree_with_the_parsed_headers(
    head: list[bytes], expected: tuple[str | None, str | None]
) -> None:
    """header() searches one joined, lower-cased copy of the final head: it finds what parsing
    every line finds (the first value, any case), and nothing of an interim head; --cache's
    validators are read through it."""
    from afetch.cache import Validators
    from afetch.engine.curl.head import _searchable
    from afetch.engine.curl.response import _CurlResponse

    response = _CurlResponse.__new__(_CurlResponse)
    start = max(i for i, line in enumerate(head) if line.startswith(b"HTTP/"))
    response._head = _searchable(head[start:])
    response._headers = None
    parsed = response.headers
    assert (parsed.get("etag"), parsed.get("last-modified")) == expected
    assert Validators.of(response) == (None if expected == (None, None) else expected)
    assert (response.header("ETag"), response.header("Last-Modified")) == expected
