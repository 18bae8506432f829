"""The plain aiohttp baseline: read a URL file, fetch every URL with a semaphore, gather.

Usage: python bench/aiohttp_gather.py URLS_FILE CONCURRENCY [--uvloop]
           [--connect-timeout S] [--timeout S]
Exits 1 if any URL failed, so the benchmark notices a broken run. The timeouts (default:
aiohttp's own) let the internet lab give every client the same deadlines; TLS trusts
SSL_CERT_FILE when set (the lab's CA).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp


async def main(path: str, concurrency: int, timeout: aiohttp.ClientTimeout) -> int:
    with open(path) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

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
    parser = argparse.ArgumentParser()
    parser.add_argument("urls")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--connect-timeout", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args()
    timeout = aiohttp.client.DEFAULT_TIMEOUT
    if args.timeout is not None or args.connect_timeout is not None:
        # connect: DNS, TCP and TLS (as curl's --connect-timeout); total: the whole request.
        timeout = aiohttp.ClientTimeout(total=args.timeout, connect=args.connect_timeout)
    job = main(args.urls, args.concurrency, timeout)
    if args.uvloop:
        import uvloop

        raise SystemExit(uvloop.run(job))
    raise SystemExit(asyncio.run(job))
