"""The plain aiohttp baseline: read a URL file, fetch every URL with a semaphore, gather.

Usage: python bench/aiohttp_gather.py URLS_FILE CONCURRENCY [--uvloop]
Exits 1 if any URL failed, so the benchmark notices a broken run.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp


async def main(path: str, concurrency: int) -> int:
    with open(path) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> bool:
            async with semaphore:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        return response.status < 400
                except (aiohttp.ClientError, TimeoutError):
                    return False

        results = await asyncio.gather(*(one(url) for url in urls))
    failed = results.count(False)
    if failed:
        print(f"aiohttp_gather: {failed} of {len(urls)} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    if "--uvloop" in sys.argv[3:]:
        import uvloop

        raise SystemExit(uvloop.run(main(sys.argv[1], int(sys.argv[2]))))
    raise SystemExit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
