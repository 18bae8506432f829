"""Hostile bodies against the body consumers (--include body/json/title, --save-dir, --hash):
every record arrives, honest, in bounded time, on both engines (libcurl, and httpx's own
transport behind the adapter)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import afetch
from afetch import Record, Settings
from afetch._loopback import LoopbackServer

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
