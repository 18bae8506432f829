"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
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
