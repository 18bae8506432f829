"""Per-URL cost of each cron hook on its own, in microseconds (no network).

Puts the end-to-end figures of ``cron_overhead.py`` in proportion: a fetch through httpx costs
milliseconds of CPU per URL, these hooks cost microseconds. Run: ``python bench/cron_hooks.py``.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import time
from collections.abc import Callable

from afetch._record import Record
from afetch.attempt.save import BodyConsumer
from afetch.cache import Index, Validators
from afetch.input.journal import Journal, url_key
from afetch.input.shard import Shard
from afetch.output.sinks import CsvSink, JsonLinesSink

N = 5000
RECORD = Record(url="http://127.0.0.1:8080/ok/123?size=1024", status=200, bytes=1024)
BODY = b"x" * 1024


def per_call(label: str, count: int, run: Callable[[], None]) -> None:
    started = time.perf_counter()
    run()
    micro = (time.perf_counter() - started) / count * 1e6
    print(f"{label:34} {micro:8.1f} µs per URL")


def main() -> None:
    urls = [f"http://127.0.0.1:8080/ok/{i}?size=1024" for i in range(N)]
    folder = tempfile.mkdtemp(prefix="afetch-hooks-")

    sink = CsvSink(io.BytesIO())
    per_call("csv sink", N, lambda: [sink.write(RECORD) for _ in range(N)])
    json_sink = JsonLinesSink(io.BytesIO())
    per_call("jsonl sink", N, lambda: [json_sink.write(RECORD) for _ in range(N)])
    shard = Shard(0, 8)
    per_call("--shard keeps()", N, lambda: [shard.keeps(u) for u in urls])
    done = {url_key(u) for u in urls[::2]}
    per_call("--resume lookup", N, lambda: [url_key(u) in done for u in urls])
    journal = Journal(os.path.join(folder, "state"), resume=False)
    per_call("--state journal.add (os.write)", N, lambda: [journal.add(u) for u in urls])
    journal.close()

    os.mkdir(os.path.join(folder, "cache"))  # afetch makes the folder for --cache; Index does not
    cache = Index(os.path.join(folder, "cache"))

    async def cache_round() -> None:
        for url in urls:
            await asyncio.to_thread(cache.lookup, url)
            await asyncio.to_thread(cache.store, url, Validators('"v1"', None))

    per_call("--cache lookup+store (thread)", N, lambda: asyncio.run(cache_round()))

    async def cache_hit() -> None:
        for url in urls:
            await asyncio.to_thread(cache.lookup, url)

    per_call("--cache lookup, entry exists", N, lambda: asyncio.run(cache_hit()))

    async def hash_only() -> None:
        for url in urls:
            consumer = BodyConsumer(url, None)
            await consumer.feed(BODY)
            await consumer.finish()

    per_call("--hash, 1 KiB body", N, lambda: asyncio.run(hash_only()))

    async def save() -> None:
        for url in urls:
            consumer = BodyConsumer(url, os.path.join(folder, "saved"))
            await consumer.feed(BODY)
            await consumer.finish()

    per_call("--save-dir, 1 KiB body (sequential)", N, lambda: asyncio.run(save()))

    async def save_concurrently() -> None:
        async def one(url: str) -> None:
            consumer = BodyConsumer(url, os.path.join(folder, "saved2"))
            await consumer.feed(BODY)
            await consumer.finish()

        for start in range(0, N, 50):
            await asyncio.gather(*(one(u) for u in urls[start : start + 50]))

    per_call("--save-dir, 1 KiB body (50 at once)", N, lambda: asyncio.run(save_concurrently()))

    big = b"y" * (8 << 20)

    async def save_big() -> None:
        consumer = BodyConsumer("http://127.0.0.1/big", os.path.join(folder, "big"))
        for start in range(0, len(big), 65536):
            await consumer.feed(big[start : start + 65536])
        await consumer.finish()

    started = time.perf_counter()
    asyncio.run(save_big())
    rate = len(big) / (time.perf_counter() - started) / (1 << 20)
    print(f"{'--save-dir, 8 MiB body':34} {rate:8.0f} MiB/s")


if __name__ == "__main__":
    main()
