"""Connection reuse in the internet-like lab (issue 22): afetch trees and look-ahead sizes over
one shuffled list with several URLs per name, in one lab (bench/lab.py), afetch alone.

    python bench/lab_reuse.py --names 1000 --urls 4000 -c 200 --clean \\
        --variant base=/tmp/base/src --variant head --variant head:2000
    python bench/lab_reuse.py --names 2500 --urls 10000 -c 200 --variant base=/tmp/base/src \\
        --variant head --variant head:20000

A variant is ``NAME`` (this checkout's afetch), ``NAME=SRC`` (the afetch in SRC, e.g. a tree
from ``git archive``) and, for a tree with schedule/affinity.py, ``NAME:N`` runs it with a
look-ahead floor of N URLs (LOOKAHEAD_MIN; 0: 4 × -c). As root, with the bench extra.
``--clean``: no dead or slow-drip hosts and no lost DNS queries (else the lab's defaults).
Every run: connect timeout 10 s, request deadline 30 s, no retries. First the ideal of the list
(bench/lab_plan.py, as bench/run.py's); per run: wall and its ratio to the ideal, afetch's CPU
(user + system) and peak RSS (wait4), the lab's CPU, the lab's counters (connections, requests,
DNS queries) and the records fetched. The issue's full workload:
``python bench/lab_reuse.py --names 10000 --urls 50000 -c 500 --variant head``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lab_plan
from lab import Lab
from lab_plan import LabSettings

# Runs afetch's CLI with the look-ahead floor from the environment (the measurement's hook only).
RUNNER = """
import os, runpy, sys
floor = os.environ.get("LAB_REUSE_LOOKAHEAD")
if floor:
    from afetch.schedule import affinity
    affinity.LOOKAHEAD_MIN = int(floor)
sys.argv[0] = "afetch"
runpy.run_module("afetch", run_name="__main__")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--urls", type=int, default=4000)
    parser.add_argument("-c", "--concurrency", type=int, default=200)
    parser.add_argument("--clean", action="store_true")
    parser.add_argument(
        "--dns-p50-ms", type=float, default=LabSettings.dns_p50_ms, help="0: answers at once"
    )
    parser.add_argument("--variant", action="append", required=True)
    args = parser.parse_args()
    if args.clean:
        settings = LabSettings(
            names=args.names,
            urls=args.urls,
            dead_share=0,
            drip_share=0,
            dns_loss=0,
            dns_p50_ms=args.dns_p50_ms,
        )
    else:
        settings = LabSettings(names=args.names, urls=args.urls, dns_p50_ms=args.dns_p50_ms)
    with tempfile.TemporaryDirectory() as folder, Lab(settings, Path(folder)) as lab:
        urls = Path(folder) / "urls.txt"
        urls.write_text("\n".join(lab.urls) + "\n")
        runner = Path(folder) / "runner.py"
        runner.write_text(RUNNER)
        ideal, bound = lab_plan.ideal_seconds(settings, lab.hosts, lab.urls, args.concurrency)
        print(json.dumps({"ideal_s": round(ideal, 2), "lower_bound_s": round(bound, 2)}))
        for variant in args.variant:
            row = run(lab, variant, urls, runner, args.concurrency)
            row["x_ideal"] = round(row["wall_s"] / ideal, 2)  # type: ignore[operator]
            print(json.dumps(row), flush=True)


def run(lab: Lab, variant: str, urls: Path, runner: Path, concurrency: int) -> dict[str, object]:
    env = dict(os.environ)
    name, _, src = variant.partition("=")
    name, _, floor = name.partition(":")
    env["LAB_REUSE_LOOKAHEAD"] = floor
    if src:
        env["PYTHONPATH"] = src
    argv = [sys.executable, str(runner), str(urls), "-c", str(concurrency), "--no-progress"]
    argv += lab.afetch_flags()
    before, lab_cpu = lab.counters(), lab.server_cpu()
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(lab.wrap(argv), stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # this afetch alone: its CPU and peak RSS
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    counters = lab.counters()
    records = stdout.count(b"\n")
    row: dict[str, object] = {
        "variant": variant,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "cpu_ms_per_url": round((usage.ru_utime + usage.ru_stime) * 1000 / max(1, records), 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "lab_cpu_s": round(lab.server_cpu() - lab_cpu, 2),
        "records": records,
        "ok": stdout.count(b'"ok":true'),
    }
    row.update({key: value - before.get(key, 0) for key, value in counters.items()})
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        row["stderr"] = stderr[-500:].decode(errors="replace")
    return row


if __name__ == "__main__":
    main()
