"""The callback path of plain fetches (Fetcher.start on CurlEngine.count) against the coroutine
path (Fetcher.attempt on CurlEngine.send): the same record for every fault of the loopback
server, and a run that survives what goes wrong in a callback."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import httpx
import pytest

import afetch
from afetch._curl import CurlEngine
from afetch._fetcher import Fetcher
from afetch._httpx_engine import HttpxEngine
from afetch._loopback import LoopbackServer
from afetch._record import Record
from afetch._scheduler import _Run
from afetch._settings import Settings
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


async def _both_paths(url: str, **options: Any) -> tuple[tuple[Record, Any], tuple[Record, Any]]:
    settings = Settings(**options)
    engine = CurlEngine(settings)
    fetcher = Fetcher(engine, settings)
    assert fetcher.counts
    try:
        by_coroutine = await fetcher.attempt(url)
        told: asyncio.Future[tuple[Any, Record, str | None]] = (
            asyncio.get_running_loop().create_future()
        )
        assert fetcher.start(url, lambda *args: told.set_result(args), "token")
        token, record, retry_after = await told
        assert token == "token"
        return by_coroutine, (record, retry_after)
    finally:
        await engine.aclose()


@pytest.mark.parametrize("route", ROUTES)
def test_both_paths_give_the_same_record(server: LoopbackServer, route: str) -> None:
    options = {"timeout": 1.0, "max_size": 1_000_000, "max_redirects": 5}
    (slow, slow_retry), (fast, fast_retry) = asyncio.run(_both_paths(server.url(route), **options))
    assert _comparable(fast) == _comparable(slow)
    assert fast_retry == slow_retry
    if route.startswith("/retry-after"):
        assert fast_retry == "7"  # the comparison above compared something


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
def test_failures_before_any_transfer_match(url: str, options: dict[str, Any]) -> None:
    (slow, _), (fast, _) = asyncio.run(_both_paths(url, **options))
    assert slow.error is not None
    assert _comparable(fast) == _comparable(slow)
    assert "secret" not in slow.error.message


def test_a_url_with_credentials_redirected_to_another_origin(server: LoopbackServer) -> None:
    with LoopbackServer() as other:
        elsewhere = other.url("/headers")
        url = server.url(f"/redirect-to?url={elsewhere}").replace("://", "://u:p@", 1)
        (slow, _), (fast, _) = asyncio.run(_both_paths(url))
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

        def done(token: object, record: Record, retry_after: str | None) -> None:
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
    "options",
    [
        {"cache_dir": "CACHE"},
        {"save_dir": "SAVE"},
        {"hash_bodies": True},
        {"include": ("headers",)},
    ],
)
def test_options_that_read_the_body_take_the_coroutine_path(
    tmp_path: Any, options: dict[str, Any]
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

    assert not asyncio.run(counts())


def test_the_httpx_adapter_takes_the_coroutine_path() -> None:
    async def counts() -> bool:
        settings = Settings()
        mock = httpx.MockTransport(lambda request: httpx.Response(200))
        return Fetcher(HttpxEngine(mock, settings), settings).counts

    assert not asyncio.run(counts())


def test_a_failure_in_a_callback_ends_the_run_instead_of_hanging(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempted = _Run._attempted
    calls = 0

    def failing(self: _Run, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("broken scheduler")
        attempted(self, *args)

    monkeypatch.setattr(_Run, "_attempted", failing)
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

    monkeypatch.setattr("afetch._fetcher.new_record", broken)
    urls = [server.url(f"/ok?i={i}") for i in range(10)]

    async def run() -> list[Record]:
        async with asyncio.timeout(30):  # a lost attempt would hang the run
            return [r async for r in afetch.fetch(urls, concurrency=3)]

    records = asyncio.run(run())
    assert sorted(r.url for r in records) == sorted(urls)
    assert {r.error.type for r in records if r.error is not None} == {"other"}
    assert all(r.error is not None for r in records)
