"""Cost of the cron options (and of having them at all) on a 10k-URL run.

Runs the real CLI (``python -m afetch``) over N URLs served by the loopback server (in this
process, so client and server do not share a GIL) and prints, per configuration, the median
wall time and the median CPU time (user + system) of the afetch process, with their ratios to
the first configuration. CPU time is the steadier figure on a shared, loaded machine.
``--src DIR`` imports afetch from DIR instead, e.g. an export of the previous commit, to
compare before/after with every option off::

    git archive c905c3c src | tar -x -C /tmp/before
    python bench/cron_overhead.py --src /tmp/before/src --only plain
    python bench/cron_overhead.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from afetch._loopback import LoopbackServer

CONFIGS: dict[str, list[str]] = {
    "plain": [],
    "ordered": ["--ordered"],
    "format-csv": ["--format", "csv"],
    "shard-0/1": ["--shard", "0/1"],
    "state": ["--state", "{tmp}/state"],
    "hash": ["--hash"],
    "cache": ["--cache", "{tmp}/cache"],
    "save-dir": ["--save-dir", "{tmp}/saved"],
    # A first night (every URL new: inserts) and a later one (each URL read back and updated).
    "history": ["--history", "{tmp}/history.db"],
    "history-again": ["--history", "{kept}/history.db"],
    # What issue 21 asks to cost within 1.2x: a later night with the cron reports too.
    "history-again-reports": [
        *("--history", "{kept}/history.db"),
        *("--report", "prom={tmp}/afetch.prom", "--report", "json={tmp}/summary.json"),
    ],
}


def run_once(args: list[str], urls: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the afetch process) for one run; ``{kept}`` is a folder
    kept across runs (the list's), ``{tmp}`` one of this run's."""
    tmp = tempfile.mkdtemp(prefix="afetch-bench-")
    try:
        filled = [a.replace("{tmp}", tmp).replace("{kept}", str(urls.parent)) for a in args]
        command = [sys.executable, "-m", "afetch", "-q", "-c", "50", *filled, str(urls)]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"{command} exited {process.returncode}")
        return elapsed, usage.ru_utime + usage.ru_stime
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--src", help="import afetch from this folder (before/after runs)")
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS))
    options = parser.parse_args()
    env = {**os.environ}
    if options.src:
        env["PYTHONPATH"] = options.src
    names = options.only or list(CONFIGS)
    with LoopbackServer() as server, tempfile.TemporaryDirectory() as folder:
        urls = Path(folder) / "urls.txt"
        lines = (server.url(f"/ok/{i}?size=1024") for i in range(options.urls))
        urls.write_text("\n".join(lines) + "\n")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for _ in range(options.repeat):  # interleaved, so drift hits every config alike
            for name in names:
                times[name].append(run_once(CONFIGS[name], urls, env))
    base_wall = statistics.median(t[0] for t in times[names[0]])
    base_cpu = statistics.median(t[1] for t in times[names[0]])
    print(f"{options.urls} URLs, -c 50, median of {options.repeat} (src={options.src or 'tree'})")
    for name in names:
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        print(
            f"{name:12} wall {wall:7.2f} s x{wall / base_wall:.3f}"
            f"   cpu {cpu:7.2f} s x{cpu / base_cpu:.3f}   {options.urls / wall:6.0f} URLs/s"
        )


if __name__ == "__main__":
    main()
