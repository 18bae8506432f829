"""Contender: a lean aiohttp hot path (worker tasks, raw reads) against the gather baseline.

Usage: python bench/engines/aiohttp_lean.py URLS_FILE -c N [--per-host N] [--uvloop]

Unlike bench/aiohttp_gather.py: N worker tasks pull URLs from one iterator (no task, coroutine
and semaphore wait per URL, no list of all URLs' futures), no cookie jar, no automatic
decompression, and the body is read raw chunk by chunk (``content.readany``). Writes one JSON
line per URL (url, status, bytes, elapsed) to stdout. Exits 1 if any URL failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import aiohttp


async def worker(session: aiohttp.ClientSession, urls: Iterator[str], out: TextIO) -> int:
    failed = 0
    for url in urls:
        t0 = time.perf_counter()
        record: dict[str, object]
        try:
            async with session.get(url, allow_redirects=False) as response:
                size = 0
                read = response.content.readany
                while chunk := await read():
                    size += len(chunk)
                status = response.status
            record = {"url": url, "status": status, "bytes": size}
            failed += status >= 400
        except (aiohttp.ClientError, TimeoutError) as exc:
            record = {"url": url, "status": None, "bytes": 0, "error": type(exc).__name__}
            failed += 1
        record["elapsed"] = time.perf_counter() - t0
        out.write(json.dumps(record) + "\n")
    return failed


async def main(args: argparse.Namespace) -> int:
    connector = aiohttp.TCPConnector(
        limit=args.concurrency, limit_per_host=args.per_host, ttl_dns_cache=None
    )
    with open(args.urls) as source:
        urls = (line.strip() for line in source if line.strip())
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=30, connect=10),
        ) as session:
            failed = await asyncio.gather(
                *(worker(session, urls, sys.stdout) for _ in range(args.concurrency))
            )
    total = sum(failed)
    if total:
        print(f"aiohttp_lean: {total} failed", file=sys.stderr)
    return 1 if total else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls")
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.uvloop:
        import uvloop

        raise SystemExit(uvloop.run(main(arguments)))
    raise SystemExit(asyncio.run(main(arguments)))
