"""What httpx's request/response models cost per request, next to a whole aiohttp request.

    python bench/models.py

afetch keeps httpx as its API: every URL becomes an ``httpx.URL`` and an ``httpx.Request``, and
every answer an ``httpx.Response`` with ``httpx.Headers``. This measures those pieces alone
(no network), so the floor they put under afetch's per-request CPU can be compared with the
CPU a plain aiohttp script spends on a whole request (bench/run.py, "median CPU s" / URLs).
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Callable

import httpx

from afetch._record import Record
from afetch._settings import Settings
from afetch.attempt.fetcher import Fetcher, _parse_url, base_headers

URL = "http://127.0.0.1:8080/1k?n=12345"
# The response headers nginx sends for a static 1 KB file.
RAW_HEADERS = [
    (b"Server", b"nginx/1.22.1"),
    (b"Date", b"Wed, 25 Nov 2026 16:39:36 GMT"),
    (b"Content-Type", b"application/octet-stream"),
    (b"Content-Length", b"1024"),
    (b"Last-Modified", b"Wed, 25 Nov 2026 16:39:36 GMT"),
    (b"Connection", b"keep-alive"),
    (b"ETag", b'"6925dbf8-400"'),
    (b"Accept-Ranges", b"bytes"),
]


class _Body(httpx.AsyncByteStream):
    async def __aiter__(self):  # type: ignore[override]
        yield b"x" * 1024


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main(number: int = 20_000) -> None:
    settings = Settings()
    headers = base_headers(settings)
    url = httpx.URL(URL)
    request = httpx.Request("GET", url, headers=headers)
    record = Record(
        url=URL,
        final_url=URL,
        status=200,
        bytes=1024,
        content_type="application/octet-stream",
        http_version="HTTP/1.1",
        started_at="2026-11-25T16:39:36.123Z",
        elapsed_ms=1.234,
    )
    rows = [
        ("httpx.URL(str) (afetch's URL check)", lambda: _parse_url(URL)),
        ("httpx.Request(GET, URL, headers)", lambda: httpx.Request("GET", url, headers=headers)),
        ("httpx.Response(200, 8 raw headers)", lambda: httpx.Response(200, headers=RAW_HEADERS)),
        (
            "request.headers.multi_items() + str(url)",
            lambda: (request.headers.multi_items(), str(url)),
        ),
        ("record.to_json()", record.to_json),
    ]
    print("| piece | µs per request |")
    print("|---|---:|")
    total = 0.0
    for label, fn in rows:
        cost = _per_call_us(fn, number)
        total += cost
        print(f"| {label} | {cost:.1f} |")

    # The whole core on a transport that answers at once: no sockets, only afetch + httpx.
    mock = httpx.MockTransport(
        lambda request: httpx.Response(200, headers=RAW_HEADERS, stream=_Body())
    )
    fetcher = Fetcher(mock, settings)

    async def many(count: int) -> None:
        for _ in range(count):
            await fetcher.fetch(URL)

    count = number // 4
    seconds = min(timeit.repeat(lambda: asyncio.run(many(count)), number=1, repeat=3))
    print(f"| **sum of the pieces above** | **{total:.1f}** |")
    whole = seconds / count * 1e6
    print(f"| Fetcher.fetch on httpx.MockTransport (whole core, no I/O) | {whole:.1f} |")


if __name__ == "__main__":
    main()
