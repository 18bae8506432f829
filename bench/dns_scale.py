"""DNS at scale (issue 22): afetch over N names, one URL each, so every URL needs a lookup, with
each way of resolving (bench/dns_variant.py) at several -c, in the internet-like lab (bench/lab.py).

    python bench/dns_scale.py                        # 5,000 names; -c 500 2000 5000; DNS p50
                                                     #   20 ms and 0 (free); 1 run each
    python bench/dns_scale.py --names 2000 --concurrency 500 --runs 2 --dns-p50-ms 20

As root (the lab makes a network namespace); needs the bench extra and pycares. URLs are plain
HTTP (the lab's servers answer port 80 too) unless --https, so that a TLS handshake per URL does
not hide what the lookups cost. Dead and slow-drip hosts are off (their timeouts would set the
wall); DNS loss stays as the lab draws it (0.5 % of names lose their first query). Per run: wall,
CPU (user + system, wait4), peak RSS, peak threads (/proc, sampled every 5 ms), DNS queries the
lab's server received (A, AAAA), and the records: fetched, and failures by error type.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab import Lab
from lab_plan import LabSettings

HERE = Path(__file__).resolve().parent
VARIANTS = ("threaded", "cares", "getaddrinfo")


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    threads: int
    queries: int
    a: int
    aaaa: int
    ok: int
    udp_drops: int  # UDP datagrams the lab's kernel dropped for a full receive buffer
    errors: dict[str, int] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # one per error type


def peak_threads(pid: int, stop: threading.Event, peak: list[int]) -> None:
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Threads:"):
                    peak[0] = max(peak[0], int(line.split()[1]))
                    break
        except OSError:
            return
        stop.wait(0.005)


def udp_drops(lab: Lab) -> int:
    """RcvbufErrors of the lab's namespace (its /proc/net/snmp): answers or queries lost."""
    snmp = subprocess.run(lab.wrap(["cat", "/proc/net/snmp"]), capture_output=True, text=True)
    names, values = [line.split()[1:] for line in snmp.stdout.splitlines() if line[:4] == "Udp:"]
    return int(values[names.index("RcvbufErrors")])


def run_once(lab: Lab, argv: list[str], out: Path) -> Run:
    before = lab.counters()
    drops = udp_drops(lab)
    env = {**os.environ, "SSL_CERT_FILE": str(lab.ca)}
    t0 = time.perf_counter()
    with out.open("wb") as sink:
        process = subprocess.Popen(
            lab.wrap(argv),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=peak_threads, args=(process.pid, stop, peak))
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            stop.set()
            sampler.join()
    wall = time.perf_counter() - t0
    process.returncode = os.waitstatus_to_exitcode(status)
    after = lab.counters()
    ok, errors, messages = 0, collections.Counter(), {}
    for line in out.read_bytes().splitlines():
        record = json.loads(line)
        error = record.get("error")
        if error is None and record.get("status") == 200:
            ok += 1
        else:
            kind = error["type"] if error else f"status {record.get('status')}"
            errors[kind] += 1
            messages.setdefault(kind, error["message"] if error else "")

    def delta(key: str) -> int:
        return after.get(key, 0) - before.get(key, 0)

    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        peak[0],
        delta("dns_queries"),
        delta("dns_a"),
        delta("dns_aaaa"),
        ok,
        udp_drops(lab) - drops,
        dict(errors),
        messages,
    )


def table(rows: list[tuple[str, int, str, list[Run]]], names: int) -> list[str]:
    lines = [
        "| DNS p50 | -c | resolver | wall s | CPU s | peak RSS MiB | peak threads |"
        " DNS queries (A / AAAA) | UDP drops | fetched | failures |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for dns, concurrency, variant, runs in rows:
        med = statistics.median
        failures = collections.Counter()
        for run in runs:
            failures.update(run.errors)
        shown = ", ".join(f"{k} {v / len(runs):g}" for k, v in sorted(failures.items())) or "0"
        lines.append(
            f"| {dns} | {concurrency:,} | {variant} | {med(r.wall for r in runs):.2f} |"
            f" {med(r.cpu for r in runs):.2f} | {max(r.rss_mib for r in runs):.0f} |"
            f" {max(r.threads for r in runs):,} | {med(r.queries for r in runs):,.0f}"
            f" ({med(r.a for r in runs):,.0f} / {med(r.aaaa for r in runs):,.0f}) |"
            f" {med(r.udp_drops for r in runs):,.0f} |"
            f" {med(r.ok for r in runs):,.0f} of {names:,} | {shown} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[500, 2_000, 5_000])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dns-p50-ms", type=float, nargs="+", default=[20.0, 0.0])
    parser.add_argument("--https", action="store_true", help="HTTPS URLs (a handshake per URL)")
    parser.add_argument("--connect-timeout", type=float, default=LabSettings.connect_timeout_s)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # -c 5000: a socket each
    base = LabSettings(
        names=args.names,
        urls=args.names,
        dead_share=0.0,
        drip_share=0.0,
        connect_timeout_s=args.connect_timeout,
    )
    rows: list[tuple[str, int, str, list[Run]]] = []
    started = time.monotonic()
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="afetch-dns-") as tmp:
        workdir = Path(tmp)
        for dns_ms in args.dns_p50_ms:
            settings = replace(base, dns_p50_ms=dns_ms, dns_loss=base.dns_loss if dns_ms else 0)
            with Lab(settings, workdir / f"dns{dns_ms:g}") as lab:
                scheme = "https" if args.https else "http"
                urls = workdir / "urls.txt"
                urls.write_text(
                    "".join(u.replace("https://", f"{scheme}://", 1) + "\n" for u in lab.urls)
                )
                for concurrency in args.concurrency:
                    found: dict[str, list[Run]] = {v: [] for v in args.variants}
                    for round_no in range(args.runs):
                        for variant in args.variants:  # interleaved: load hits them alike
                            argv = [
                                args.python,
                                str(HERE / "dns_variant.py"),
                                variant,
                                str(urls),
                                "-c",
                                str(concurrency),
                                *lab.afetch_flags(),
                            ]
                            run = run_once(lab, argv, workdir / "out.jsonl")
                            found[variant].append(run)
                            print(
                                f"  dns {dns_ms:g} ms -c {concurrency} {variant}"
                                f" round {round_no + 1}: {run}",
                                file=sys.stderr,
                                flush=True,
                            )
                    label = f"{dns_ms:g} ms" if dns_ms else "0 (free)"
                    rows += [(label, concurrency, v, found[v]) for v in args.variants]
    lines = [
        f"{args.names:,} names, one {'HTTPS' if args.https else 'HTTP'} URL each; medians of"
        f" {args.runs}; load average at start {' '.join(load)}, at the end"
        f" {' '.join(Path('/proc/loadavg').read_text().split()[:3])};"
        f" {(time.monotonic() - started) / 60:.1f} min.",
        "",
        *table(rows, args.names),
    ]
    text = "\n".join(lines)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
