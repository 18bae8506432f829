"""Scheduler overhead: afetch CLI runs against a loopback server, wall and CPU time.

Compares source trees (e.g. the branch before and after a scheduler change) or option sets on
the same URL list, interleaving runs so machine noise hits every variant alike. CPU time (user +
sys of the afetch process) is the steadier figure on a shared machine.

    python bench/sched_overhead.py --urls 10000 --runs 5 \\
        --variant base=/tmp/base/src --variant new=src
    python bench/sched_overhead.py --variant plain=src \\
        --variant per-host=src::--per-host=8 --variant rate=src::--rate=100000

A variant is NAME=SRC_DIR[::ARG,ARG...]. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SERVER = """
import sys, time
from afetch._loopback import LoopbackServer
with LoopbackServer() as server:
    print(server.port, flush=True)
    sys.stdin.read()
"""


def _run_once(src: str, args: list[str], urls: Path, concurrency: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "afetch", str(urls), "-c", str(concurrency), "-q", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--variant", action="append", required=True, help="NAME=SRC[::ARGS]")
    options = parser.parse_args()
    variants = []
    for raw in options.variant:
        name, _, rest = raw.partition("=")
        src, _, extra = rest.partition("::")
        variants.append((name, src, [a for a in extra.split(",") if a]))
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            urls = Path(tmp, "urls.txt")
            urls.write_text(
                "".join(f"http://127.0.0.1:{port}/ok?size=512&i={i}\n" for i in range(options.urls))
            )
            times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in variants}
            for _ in range(options.runs):
                for name, src, args in variants:
                    times[name].append(_run_once(src, args, urls, options.concurrency))
        for name, samples in times.items():
            walls = [w for w, _ in samples]
            cpus = [c for _, c in samples]
            print(
                f"{name:>12}: wall min {min(walls):6.2f}s median {statistics.median(walls):6.2f}s"
                f" | cpu min {min(cpus):6.2f}s median {statistics.median(cpus):6.2f}s"
                f" | {options.urls / min(walls):7.0f} URLs/s best"
            )
    finally:
        server.stdin.close() if server.stdin else None
        server.wait(10)


if __name__ == "__main__":
    main()
