"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

import afetch
from afetch import Record


def collect(
    urls: Iterable[str], *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> list[Record]:
    """Run ``afetch.fetch`` to completion and return its records."""

    async def run() -> list[Record]:
        return [r async for r in afetch.fetch(urls, transport=transport, **options)]

    return asyncio.run(run())


def by_url(records: Iterable[Record]) -> dict[str, Record]:
    return {record.url: record for record in records}


def wait_until(condition: Callable[[], bool], *, timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` until it holds: the sign a test waits for, instead of a fixed sleep
    that is too long on an idle machine and too short on a loaded one."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what or condition}"
        time.sleep(0.01)
