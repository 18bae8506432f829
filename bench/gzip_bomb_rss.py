"""Peak RSS while fetching gzip bombs: afetch's bounded decoder against httpx's own.

Each reader runs in a fresh child process (so peak RSS is its own) against a loopback server in
this process. Usage::

    python bench/gzip_bomb_rss.py [--mb 1024] [--count 4]

``--count`` bombs are fetched concurrently; each inflates to ``--mb`` MiB from ~1 KB per MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time

import httpx

import afetch
from afetch._loopback import LoopbackServer
from afetch._loopback.routes import gzip_bomb


async def _with_afetch(urls: list[str]) -> int:
    return sum([r.bytes async for r in afetch.fetch(urls, concurrency=len(urls), timeout=600)])


async def _with_httpx(urls: list[str]) -> int:
    async with httpx.AsyncClient(timeout=600) as client:

        async def one(url: str) -> int:
            total = 0
            async with client.stream("GET", url) as response:
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
            return total

        return sum(await asyncio.gather(*(one(url) for url in urls)))


def child(reader: str, urls: list[str]) -> None:
    started = time.perf_counter()
    run = _with_afetch if reader == "afetch" else _with_httpx
    total = asyncio.run(run(urls))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    seconds = round(time.perf_counter() - started, 2)
    print(
        json.dumps(
            {
                "reader": reader,
                "inflated": total,
                "peak_rss_mib": peak_kib // 1024,
                "seconds": seconds,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    with LoopbackServer() as server:
        print(f"gzip body: {len(gzip_bomb(args.mb)):,} bytes inflating to {args.mb} MiB")
        urls = [server.url(f"/gzip-bomb?mb={args.mb}")] * args.count
        for reader in ("afetch", "httpx"):
            subprocess.run([sys.executable, __file__, "--child", reader, *urls], check=True)


if __name__ == "__main__":
    main()
