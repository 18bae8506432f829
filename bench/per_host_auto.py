"""``--per-host auto`` against a host that takes N requests at once, vs fixed limits.

Runs the real CLI (``python -m afetch -c 50``) over U URLs of the loopback server's
``/busy/N?ms=M`` route (200 after M ms; 503 at once to a request arriving while N are in
flight), with the default retry policy. Modes, interleaved round by round:

* ``auto``: ``--per-host auto``;
* ``fixed too high``: ``--per-host 50`` (as good as no limit under ``-c 50``);
* ``fixed right``: ``--per-host N`` (the threshold, which nobody knows beforehand);
* ``fixed too low``: ``--per-host 1``.

Prints, per mode, the median wall time (process start to exit), its ratio to ``--per-host 1``,
the 503s the server sent (retries included), the records that ended 200, and the limit the
summary says ``auto`` settled at::

    python bench/per_host_auto.py                  # 500 URLs, N=8, 20 ms, 3 rounds
    python bench/per_host_auto.py --urls 200 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time

from afetch._loopback import LoopbackServer


def run_once(server: LoopbackServer, per_host: str, urls: str) -> tuple[float, int, int, str]:
    """(wall seconds, 503s sent, records ok, settled limit or "–") for one run."""
    with server.stats.lock:
        server.stats.busy_refused = 0
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "afetch", "-c", "50", "--per-host", per_host, "--no-progress"],
        input=urls,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    ok = sum(json.loads(line).get("status") == 200 for line in done.stdout.splitlines())
    settled = re.search(r"settled at (\d+)", done.stderr)
    return wall, server.stats.busy_refused, ok, settled.group(1) if settled else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument("--ms", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = {
        "auto": "auto",
        "fixed too high (50)": "50",
        f"fixed right ({args.threshold})": str(args.threshold),
        "fixed too low (1)": "1",
    }
    results: dict[str, list[tuple[float, int, int, str]]] = {mode: [] for mode in modes}
    with LoopbackServer() as server:
        urls = "".join(
            server.url(f"/busy/{args.threshold}/{i}?ms={args.ms}") + "\n" for i in range(args.urls)
        )
        for _ in range(args.rounds):
            for mode, per_host in modes.items():
                results[mode].append(run_once(server, per_host, urls))
    low = statistics.median(r[0] for r in results["fixed too low (1)"])
    print(
        f"{args.urls} URLs, host takes {args.threshold} at once, {args.ms} ms each, -c 50, "
        f"retries 2 (default); median of {args.rounds} rounds\n"
    )
    print("| mode | wall s | vs --per-host 1 | 503s sent | records 200 | settled at |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        refused = statistics.median(r[1] for r in runs)
        ok = statistics.median(r[2] for r in runs)
        settled = "/".join(r[3] for r in runs)
        print(f"| {mode} | {wall:.2f} | {wall / low:.2f}x | {refused:.0f} | {ok:.0f} | {settled} |")


if __name__ == "__main__":
    main()
