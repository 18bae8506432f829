"""The --history store at scale: a generated store of N URLs (a million by default), its size
on disk, and how long a run takes to open it, judge a batch against it, count the exit policy
and finish (prune). Figures in docs/performance.md ("History store").

The store is made as runs make it (afetch.watch.history.History.judge, batches of 256), over
two runs so every row has been read back and updated once::

    python bench/history_store.py            # 1,000,000 URLs, a few minutes
    python bench/history_store.py --urls 100000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from afetch._record import Record
from afetch.watch.history import History

BATCH = 256


def fill(path: str, urls: int, *, run_ok: bool) -> tuple[float, float]:
    """One run over ``urls`` URLs: (its seconds, the CPU seconds of judging, records made
    for it not counted)."""
    started, cpu = time.perf_counter(), 0.0
    history = History(path, resume=False)
    for start in range(0, urls, BATCH):
        batch = [
            Record(
                url=f"https://example{i % 5000}.org/page/{i}",
                final_url=f"https://example{i % 5000}.org/page/{i}",
                status=200 if run_ok or i % 10 else 503,
                sha256=f"{i:064x}",
                started_at="2026-12-07T04:00:00.000Z",
            )
            for i in range(start, min(start + BATCH, urls))
        ]
        oks = [record.status == 200 for record in batch]
        before = time.process_time()
        history.judge(batch, oks)
        cpu += time.process_time() - before
    history.finish()
    history.close()
    return time.perf_counter() - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--urls", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "history.db")
        (first, _), (second, second_cpu) = (
            fill(path, options.urls, run_ok=True),
            fill(path, options.urls, run_ok=False),
        )
        size = sum(
            os.path.getsize(path + end) for end in ("", "-wal") if os.path.exists(path + end)
        )
        started = time.perf_counter()
        history = History(path, resume=False)
        opened = time.perf_counter() - started
        batch = [
            Record(
                url=f"https://example{i % 5000}.org/page/{i * 3877 % options.urls}",
                status=200,
                started_at="t",
            )
            for i in range(BATCH)
        ]
        started = time.perf_counter()
        history.judge(batch, [True] * BATCH)
        judged = time.perf_counter() - started
        started = time.perf_counter()
        history.failing(at_least=1, exactly=False)
        counted = time.perf_counter() - started
        started = time.perf_counter()
        history.finish()
        finished = time.perf_counter() - started
        history.close()
    print(
        f"{options.urls} URLs: first run {first:.1f} s, second run {second:.1f} s, "
        f"of which judging {second_cpu:.1f} s CPU ({second_cpu / options.urls * 1e6:.1f} µs/URL)"
    )
    print(f"on disk {size / 2**20:.1f} MiB ({size / options.urls:.0f} bytes/URL)")
    print(
        f"open {opened * 1000:.1f} ms, judge {BATCH} random URLs {judged * 1000:.1f} ms, "
        f"exit-policy count {counted * 1000:.0f} ms, finish (prune) {finished * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
