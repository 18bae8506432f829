"""Scheduler cost alone: afetch.fetch over an instant in-process transport (no sockets).

With the network out of the picture, what is left is the per-URL cost of the scheduler, the
fetcher and httpx's request/response models. Run it against two source trees to compare:

    PYTHONPATH=/tmp/base/src python bench/sched_mock.py --urls 50000
    PYTHONPATH=src python bench/sched_mock.py --urls 50000 --per-host 8

Prints the best of ``--runs`` runs, in URLs per second.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

import afetch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=20, help="distinct host:port pairs")
    parser.add_argument("--per-host", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None)
    options = parser.parse_args()
    extra = {}
    if options.per_host is not None:
        extra["per_host"] = options.per_host
    if options.rate is not None:
        extra["rate"] = options.rate
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 512))
    urls = [f"http://127.0.0.1:{1000 + i % options.hosts}/{i}" for i in range(options.urls)]

    async def once() -> float:
        t0 = time.perf_counter()
        count = 0
        async for _ in afetch.fetch(
            urls, transport=transport, concurrency=options.concurrency, **extra
        ):
            count += 1
        assert count == len(urls)
        return time.perf_counter() - t0

    best = min(asyncio.run(once()) for _ in range(options.runs))
    print(f"{options.urls / best:8.0f} URLs/s (best of {options.runs}, {best:.2f}s) {extra}")


if __name__ == "__main__":
    main()
