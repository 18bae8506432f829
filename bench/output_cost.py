"""CPU per record of afetch's output path, this tree against another (A/B, interleaved).

    python bench/output_cost.py --before /path/to/old/src [--urls 10000] [--rounds 5]
    python bench/output_cost.py --micro [--records 100000] [--rounds 5]

Starts afetch's loopback server (``afetch._loopback``) in a child process on 127.0.0.1, writes
URLS small-body URLs, then runs ``python -m afetch URLS -c 50 -q`` from each source tree,
round by round, with stdout to /dev/null and to a pipe drained by ``cat``. Reports the median
CPU (user + system of the afetch process and its threads, from ``wait4``) per run and per
record. Only the two trees differ, so the difference is what the change costs.

``--micro`` measures the output path alone, without any network, in one process: 100,000
records (with ``--work-us``, the loop is kept busy that long per record, as fetching keeps it,
and that time is subtracted) handed to the old path (``sink.write`` + ``Stats.add`` on the
event loop, one write and
flush per record) and to the new one (``RecordWriter.offer``/``put``, a writer thread that
batches), to /dev/null and to a pipe drained by ``cat``; CPU is the process's (all threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THIS_SRC = HERE.parent / "src"
SERVER = (
    "import sys, time\n"
    "from afetch._loopback import LoopbackServer\n"
    "with LoopbackServer() as server:\n"
    "    print(server.port, flush=True)\n"
    "    sys.stdin.read()\n"
)


def run_once(src: Path, urls: Path, *, to_pipe: bool) -> tuple[float, float, int]:
    """(CPU s, wall s, exit code) of one afetch run from source tree ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, "-m", "afetch", str(urls), "-c", "50", "-q", "--no-progress"]
    started = time.monotonic()
    if to_pipe:
        reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        child = subprocess.Popen(args, env=env, stdout=reader.stdin)
        assert reader.stdin is not None
        reader.stdin.close()
    else:
        reader = None
        child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if reader is not None:
        reader.wait()
    return usage.ru_utime + usage.ru_stime, wall, child.returncode


def _burn(seconds: float) -> None:
    """Keep the event loop's thread busy, as fetching keeps it (the GIL stays wanted)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def micro_once(path: str, count: int, *, threaded: bool, work: float = 0.0) -> float:
    """CPU seconds (all threads) to hand ``count`` records to one output path."""
    import asyncio

    from afetch._record import Record
    from afetch._stats import Stats
    from afetch.output.sinks import JsonLinesSink
    from afetch.output.writer import RecordWriter

    records = [
        Record(url=f"http://127.0.0.1:8080/ok?size=100&i={i}", status=200, bytes=100)
        for i in range(count)
    ]
    reader = None
    if path == "pipe":
        reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert reader.stdin is not None
        stream = os.fdopen(os.dup(reader.stdin.fileno()), "wb")
        reader.stdin.close()
    else:
        stream = open(os.devnull, "wb")  # noqa: SIM115 - the sink closes it

    async def old() -> None:
        sink, stats = JsonLinesSink(stream), Stats()
        for record in records:
            sink.write(record)
            stats.add(record)
            _burn(work)
            await asyncio.sleep(0)  # a fetch loop yields between records
        sink.close()

    async def new() -> None:
        sink, stats = JsonLinesSink(stream), Stats()
        writer = RecordWriter(stream, sink, stats=stats)
        for record in records:
            if not writer.offer(record):
                await writer.put(record)
            _burn(work)
            await asyncio.sleep(0)  # a fetch loop yields between records
        await writer.close(stop=asyncio.Event(), grace=1.0)
        writer.check()
        sink.close()

    started = time.process_time()
    asyncio.run(new() if threaded else old())
    seconds = time.process_time() - started
    if reader is not None:
        reader.wait()
    return seconds


def micro(count: int, rounds: int, work: float) -> None:
    sys.path.insert(0, str(THIS_SRC))
    cpu: dict[tuple[str, bool], list[float]] = {}
    for _ in range(rounds):
        for path in ("/dev/null", "pipe"):
            for threaded in (False, True):
                cpu.setdefault((path, threaded), []).append(
                    micro_once(path, count, threaded=threaded, work=work)
                )
    busy = f", the loop busy {work * 1e6:.0f} µs per record (not counted)" if work else ""
    print(f"\n{count:,} records, output path alone{busy}, medians of {rounds} (process CPU)\n")
    print("| output | on the loop µs/record | writer thread µs/record | thread / loop |")
    print("|---|---:|---:|---:|")
    for path in ("/dev/null", "pipe"):
        old = statistics.median(cpu[(path, False)]) / count * 1e6 - work * 1e6
        new = statistics.median(cpu[(path, True)]) / count * 1e6 - work * 1e6
        print(f"| {path} | {old:.1f} | {new:.1f} | {new / old:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", action="store_true", help="the output path alone")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--work-us", type=float, default=0.0, help="--micro: loop CPU per record, like a fetch"
    )
    parser.add_argument("--before", type=Path, help="the other tree's src/")
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.micro:
        micro(args.records, args.rounds, args.work_us / 1e6)
        return
    if args.before is None:
        parser.error("--before is required (or --micro)")
    trees = {"before": args.before.resolve(), "after": THIS_SRC}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(THIS_SRC)},
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as folder:
            urls = Path(folder) / "urls.txt"
            urls.write_text(
                "".join(f"http://127.0.0.1:{port}/ok?size=100&i={i}\n" for i in range(args.urls))
            )
            cpu: dict[tuple[str, bool], list[float]] = {}
            for round_ in range(args.rounds):
                for to_pipe in (False, True):
                    for label, src in trees.items():
                        seconds, wall, code = run_once(src, urls, to_pipe=to_pipe)
                        assert code == 0, f"{label} exited {code}"
                        cpu.setdefault((label, to_pipe), []).append(seconds)
                        where = "pipe" if to_pipe else "/dev/null"
                        print(
                            f"round {round_ + 1} {label:6} {where:9} "
                            f"cpu {seconds:.2f} s wall {wall:.2f} s",
                            file=sys.stderr,
                        )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    print(f"\n{args.urls:,} URLs x 100 B, -c 50, medians of {args.rounds} (CPU = user + system)\n")
    print(
        "| output | before CPU s | after CPU s | after / before | "
        "median of per-round ratios | µs per record before → after |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for to_pipe in (False, True):
        befores, afters = cpu[("before", to_pipe)], cpu[("after", to_pipe)]
        before, after = statistics.median(befores), statistics.median(afters)
        # Rounds run back to back, so a round's ratio is the least disturbed by other load.
        paired = statistics.median(a / b for a, b in zip(afters, befores, strict=True))
        per = f"{before / args.urls * 1e6:.0f} → {after / args.urls * 1e6:.0f}"
        where = "pipe to `cat`" if to_pipe else "/dev/null"
        print(
            f"| {where} | {before:.2f} | {after:.2f} | {after / before:.3f}× | "
            f"{paired:.3f}× | {per} |"
        )


if __name__ == "__main__":
    main()
