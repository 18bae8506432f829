"""The plain httpx baseline: the same script as aiohttp_gather.py, with httpx.AsyncClient.

Usage: python bench/httpx_gather.py URLS_FILE CONCURRENCY
Exits 1 if any URL failed, so the benchmark notices a broken run.
"""

from __future__ import annotations

import asyncio
import sys

import httpx


async def main(path: str, concurrency: int) -> int:
    with open(path) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:

        async def one(url: str) -> bool:
            async with semaphore:
                try:
                    response = await client.get(url)
                    return response.status_code < 400
                except httpx.HTTPError:
                    return False

        results = await asyncio.gather(*(one(url) for url in urls))
    failed = results.count(False)
    if failed:
        print(f"httpx_gather: {failed} of {len(urls)} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
