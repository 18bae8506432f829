"""Pure scheduler cost: afetch.fetch with the fetcher replaced by an instant stub.

No HTTP models, no sockets: what is left is reading the list, the scheduler's bookkeeping, task
creation and handing records to the consumer. Prints CPU microseconds per URL (best of 5):

    PYTHONPATH=/tmp/base/src python bench/sched_noop.py
    PYTHONPATH=src python bench/sched_noop.py --per-host 8
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

import afetch
import afetch.attempt.fetcher as fetcher_module
from afetch import Record

_RECORD = Record(url="http://127.0.0.1/", status=200, started_at="")


async def _fetch(self: Any, url: str) -> Record:
    return _RECORD


async def _attempt(self: Any, url: str) -> tuple[Record, None]:
    return _RECORD, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=None)
    options = parser.parse_args()
    # Older trees have only Fetcher.fetch; newer ones call Fetcher.attempt.
    fetcher_module.Fetcher.fetch = _fetch  # type: ignore[method-assign]
    fetcher_module.Fetcher.attempt = _attempt  # type: ignore[attr-defined]
    extra = {} if options.per_host is None else {"per_host": options.per_host}
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    urls = [f"http://127.0.0.1:{1000 + i % 20}/{i}" for i in range(options.urls)]

    async def once() -> float:
        t0 = time.process_time()
        async for _ in afetch.fetch(
            urls, transport=transport, concurrency=options.concurrency, **extra
        ):
            pass
        return time.process_time() - t0

    best = min(asyncio.run(once()) for _ in range(5))
    print(f"{best / len(urls) * 1e6:6.2f} µs CPU per URL (best of 5) {extra}")


if __name__ == "__main__":
    main()
