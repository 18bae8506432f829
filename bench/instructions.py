"""Instructions per request, counted by callgrind: an A/B of afetch source trees that the
machine's load cannot move.

    python bench/instructions.py --tree base=/tmp/base/src --tree head=src
    python bench/instructions.py --mode options-cold --mode latency --tree head=src
    python bench/instructions.py --mode many --urls 3000 --minus 1000 --tree head=src

Runs ``valgrind --tool=callgrind`` over the whole CLI (all threads; not child processes) for
``--urls`` and ``--minus`` URLs against the bench's private nginx and prints
(instructions(urls) - instructions(minus)) / (urls - minus): start-up and the fixed cost of a
run cancel out. Counts still move by a few per cent with timing (how many events one loop turn
finds), so compare trees in one invocation, ``--repeat`` times, and look at the medians.
Mode ``many`` is bench/run.py's many-hosts workload in small: each URL list spreads over half
as many loopback addresses (127.0.x.y, every host twice, as 20,000 URLs over 10,000 hosts),
served with keepalive off, ``-c 200 --per-host 2``: a new connection per request.
Needs valgrind and the nginx of bench/run.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import Nginx, write_lines

COLLECTED = re.compile(rb"Collected : (\d+)")
URLS_PER_HOST = 2

# mode -> (path on nginx, ports to spread over, -c, extra options, needs a warm-up run);
# ports 0: the many-hosts listener, over n // URLS_PER_HOST loopback addresses.
MODES: dict[str, tuple[str, int, int, list[str], bool]] = {
    "plain": ("/1k", 1, 50, [], False),
    "latency": ("/sleep", 4, 500, [], False),
    "options-cold": (
        "/1k",
        1,
        50,
        ["--state", "{state}", "--cache", "{cache}", "--hash", "--ordered"],
        False,
    ),
    "options-warm": (
        "/1k",
        1,
        50,
        ["--state", "{state}", "--cache", "{cache}", "--hash", "--ordered"],
        True,
    ),
    "many": ("/1k", 0, 200, ["--per-host", "2"], False),
    "history": (
        "/1k",
        1,
        50,
        ["--history", "{history}", "--report", "prom={prom}", "--report", "json={json}"],
        True,
    ),
}


def count(argv: list[str], env: dict[str, str]) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    found = COLLECTED.search(done.stderr)
    if not found:
        sys.exit(
            "instructions: no count from callgrind:\n"
            + done.stderr[-2000:].decode(errors="replace")
        )
    return int(found.group(1))


def per_request(mode: str, src: str, nginx: Nginx, work: Path, urls: int, minus: int) -> float:
    path, spread, concurrency, extra, warm = MODES[mode]
    env = {**os.environ, "PYTHONPATH": src, "PYTHONHASHSEED": "0"}
    totals = []
    for n in (urls, minus):
        if spread:
            lines = (nginx.url(path, i, spread=spread) for i in range(n))
        else:
            hosts = max(1, n // URLS_PER_HOST)
            lines = (nginx.many_host_url(i, hosts=hosts) for i in range(n))
        listing = write_lines(work / f"{mode}-{n}.txt", lines)
        run = work / f"{mode}-{n}-run"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir()
        names = {k: str(run / k) for k in ("state", "cache", "history", "prom", "json")}
        opts = [a.format(**names) for a in extra]
        argv = [
            sys.executable,
            "-m",
            "afetch",
            str(listing),
            "-c",
            str(concurrency),
            "-q",
            "--no-progress",
        ]
        if warm:
            subprocess.run([*argv, *opts], env=env, stdout=subprocess.DEVNULL, check=False)
            (run / "state").unlink(missing_ok=True)
        totals.append(count([*argv, *opts], env))
    return (totals[0] - totals[1]) / (urls - minus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="LABEL=SRC (a src folder)")
    parser.add_argument("--mode", action="append", choices=sorted(MODES), help="default: plain")
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--minus", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    trees = [tuple(t.split("=", 1)) for t in args.tree]
    modes = args.mode or ["plain"]
    if shutil.which("valgrind") is None:
        sys.exit("instructions: valgrind is missing (apt-get install -y valgrind)")
    with Nginx() as nginx, tempfile.TemporaryDirectory(prefix="afetch-instr-") as tmp:
        work = Path(tmp)
        print("| mode | tree | instructions per request (each run) | median | × first tree |")
        print("|---|---|---|---:|---:|")
        for mode in modes:
            first = None
            for label, src in trees:
                runs = [
                    per_request(mode, str(Path(src).resolve()), nginx, work, args.urls, args.minus)
                    for _ in range(args.repeat)
                ]
                median = statistics.median(runs)
                first = first or median
                each = ", ".join(f"{r / 1000:.0f}k" for r in runs)
                print(
                    f"| {mode} | {label} | {each} | {median / 1000:.1f}k | {median / first:.3f}× |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
