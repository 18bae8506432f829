"""Workload ``c10k``: afetch alone at ``-c 10,000`` over 1,000,000 URLs of the internet-like lab.

    python bench/run.py --only c10k                                 # 1,000,000 URLs, -c 10,000
    python bench/run.py --only c10k --c10k-urls 100000              # a tenth, to look first

Issue 22's "every record, bounded memory, file descriptors handled as today": the URLs go over
the lab's names (bench/lab.py: its DNS, TLS on every name, per-host latency, dead and slow
hosts) and afetch's stdout goes to a file, which is read back afterwards: one JSON record with a
``url`` per input line, each input URL exactly once. Measured: wall, CPU (user + system) and peak
RSS from wait4, open descriptors (peak of /proc/PID/fd sampled every second), RSS and records
over time (to tell a bound from growth), the error types, what the lab counted.

afetch starts with the soft open-files limit of an ordinary login (``--c10k-nofile``, default
soft 1024 under the machine's hard limit), not the bench's raised one, so the run exercises its
own raising of the soft limit (src/afetch/run/fdlimit.py). No peers: ``curl --parallel`` caps at 300
here, and the others resolve names a few at a time (docs/performance.md).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import lab_plan
from lab import Lab
from lab_plan import LabSettings

MIB = 1024 * 1024
_SHAPE = re.compile(r"h\d{5}|\d+(\.\d+)?")
SAMPLE_S = 1.0


@dataclass
class Sample:
    seconds: float
    rss_kb: int
    fds: int
    output_bytes: int


@dataclass
class Watch:
    """Samples of a running process: resident memory, open descriptors, output so far."""

    pid: int
    output: Path
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(SAMPLE_S):
            try:
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:  # gone (or not yet exec'd into afetch)
                continue
            rss = next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")),
                0,
            )
            size = self.output.stat().st_size if self.output.exists() else 0
            self.samples.append(Sample(time.monotonic() - started, rss, fds, size))


@dataclass
class Check:
    """What afetch's stdout held, against the input."""

    lines: int = 0
    not_json: int = 0
    no_url: int = 0
    unknown: int = 0
    duplicates: int = 0
    missing: int = 0
    ok: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Error messages with their numbers and names blanked: what the errors say, most common.
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)

    @property
    def whole(self) -> bool:
        return not (self.not_json or self.no_url or self.unknown or self.duplicates or self.missing)


def check_records(output: Path, urls: list[str]) -> Check:
    check = Check()
    left = collections.Counter(urls)
    with output.open("rb") as handle:
        for line in handle:
            check.lines += 1
            try:
                record = json.loads(line)
            except ValueError:
                check.not_json += 1
                continue
            url = record.get("url") if isinstance(record, dict) else None
            if not isinstance(url, str):
                check.no_url += 1
                continue
            count = left.get(url)
            if count is None:
                check.unknown += 1
                continue
            if count == 0:
                check.duplicates += 1
                continue
            left[url] = count - 1
            if record.get("ok"):
                check.ok += 1
            error = record.get("error")
            if error:
                check.errors[str(error.get("type"))] += 1
                message = _SHAPE.sub("N", str(error.get("message")))
                check.messages[f"{error.get('type')}: {message[:120]}"] += 1
            elif record.get("status") is not None:
                check.statuses[record["status"]] += 1
    check.missing = sum(left.values())
    return check


def _nofile(text: str) -> tuple[int, int]:
    soft, _, hard = text.partition(":")
    return int(soft), int(hard or soft)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("c10k (--only c10k; bench/lab_c10k.py)")
    group.add_argument("--c10k-urls", type=int, default=1_000_000)
    group.add_argument("--c10k-names", type=int, default=10_000)
    group.add_argument("--c10k-concurrency", type=int, default=10_000)
    group.add_argument(
        "--c10k-nofile",
        type=_nofile,
        default=None,
        metavar="SOFT:HARD",
        help="afetch's starting open-files limit (default: soft 1024, hard as the bench's;"
        " a hard limit above the bench's needs CAP_SYS_RESOURCE)",
    )
    group.add_argument("--c10k-extra", nargs="*", default=[], help="more afetch options")
    group.add_argument("--c10k-keep", type=Path, help="copy afetch's records here")


def c10k(args: argparse.Namespace, workdir: Path, settings: LabSettings) -> list[str]:
    concurrency = args.c10k_concurrency
    if args.c10k_nofile is None:
        args.c10k_nofile = (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    soft, hard = args.c10k_nofile
    with Lab(settings, workdir, servers=args.lab_servers) as lab:
        urls_file = workdir / "c10k.txt"
        urls_file.write_text("".join(url + "\n" for url in lab.urls))
        output, errors = workdir / "c10k.jsonl", workdir / "c10k.stderr"
        argv = lab.wrap(
            [
                args.python,
                "-m",
                "afetch",
                str(urls_file),
                "-c",
                str(concurrency),
                "--no-progress",
                *lab.afetch_flags(),
                *args.c10k_extra,
            ]
        )
        before = {**lab.counters(), "cpu": lab.server_cpu()}
        t0 = time.perf_counter()
        with output.open("wb") as out, errors.open("wb") as err:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
            )
        watch = Watch(process.pid, output)
        sampler = threading.Thread(target=watch.run, daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # the run must not outlive the bench (or its lab)
            process.kill()
            process.wait()
            raise
        finally:
            watch.stop.set()
            sampler.join()
        wall = time.perf_counter() - t0
        returncode = os.waitstatus_to_exitcode(status)
        after = {**lab.counters(), "cpu": lab.server_cpu()}
        ideal, bound = lab_plan.ideal_seconds(settings, lab.hosts, lab.urls, concurrency)
        plan = lab_plan.summary(settings, lab.hosts, lab.urls)
        check = check_records(output, lab.urls)
        if args.c10k_keep is not None:
            shutil.copyfile(output, args.c10k_keep)
        stderr_tail = errors.read_text(errors="replace").strip().splitlines()[-5:]
        servers = lab.servers
    cpu = usage.ru_utime + usage.ru_stime
    lab_delta = {key: after[key] - before[key] for key in after}
    return report(
        args,
        settings,
        plan,
        check=check,
        wall=wall,
        cpu=cpu,
        max_rss_kb=usage.ru_maxrss,
        returncode=returncode,
        watch=watch,
        lab_delta=lab_delta,
        ideal=(ideal, bound),
        stderr_tail=stderr_tail,
        servers=servers,
    )


def report(
    args: argparse.Namespace,
    settings: LabSettings,
    plan: dict[str, object],
    *,
    check: Check,
    wall: float,
    cpu: float,
    max_rss_kb: int,
    returncode: int,
    watch: Watch,
    lab_delta: dict[str, float],
    ideal: tuple[float, float],
    stderr_tail: list[str],
    servers: int,
) -> list[str]:
    urls = int(plan["urls"])  # type: ignore[call-overload]
    kinds = plan["kinds"]
    assert isinstance(kinds, dict)
    peak_fds = max((s.fds for s in watch.samples), default=0)
    sampled_rss = max((s.rss_kb for s in watch.samples), default=0)
    soft, hard = args.c10k_nofile
    lines = [
        f"### c10k: {urls:,} HTTPS URLs over {plan['names']:,} lab names,"
        f" -c {args.c10k_concurrency:,}",
        "",
        f"afetch alone, in the lab's namespace, starting under `ulimit -n` {soft} (hard {hard});"
        f" connect timeout {settings.connect_timeout_s:g} s, request deadline"
        f" {settings.max_time_s:g} s, no retries; {servers} lab server processes on the same"
        " machine. Extra afetch options: "
        + (" ".join(f"`{o}`" for o in args.c10k_extra) if args.c10k_extra else "none")
        + ".",
        "",
        "| records out (of URLs in) | every URL once, JSON with url | exit | wall s | ideal s |"
        " CPU s | CPU ms per URL | peak RSS MiB | peak fds |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {check.lines:,} ({urls:,}) | {'yes' if check.whole else 'NO'} | {returncode} |"
        f" {wall:.1f} | {ideal[0]:.1f} | {cpu:.1f} | {cpu / urls * 1000:.3f} |"
        f" {max_rss_kb / 1024:.0f} | {peak_fds:,} |",
        "",
    ]
    if not check.whole:
        lines += [
            f"Records wrong: {check.not_json} not JSON, {check.no_url} without a url,"
            f" {check.unknown} of URLs not in the input, {check.duplicates} duplicates,"
            f" {check.missing} input URLs without a record.",
            "",
        ]
    servable = plan["servable_urls"]
    lines += [
        f"ok: {check.ok:,} (of {servable:,} URLs on live hosts); statuses "
        + ", ".join(f"{status}: {n:,}" for status, n in sorted(check.statuses.items()))
        + "; error types "
        + (", ".join(f"{kind}: {n:,}" for kind, n in check.errors.most_common()) or "none")
        + ".",
        "",
        *(f"- {n:,} × {message}" for message, n in check.messages.most_common(6)),
        "",
        f"Hosts: {kinds['ok']:,} answering, {kinds['dead']:,} dead, {kinds['drip']:,} slow-drip;"
        f" ideal lower bound {ideal[1]:.1f} s. The lab counted {lab_delta['connections']:,.0f}"
        f" connections and {lab_delta['responses']:,.0f} whole responses and used"
        f" {lab_delta['cpu']:.1f} s of CPU. Sampled peak RSS {sampled_rss / 1024:.0f} MiB.",
        "",
        "Over the run (samples every second, about every tenth shown):",
        "",
        "| s | RSS MiB | fds | output MiB |",
        "|---:|---:|---:|---:|",
    ]
    step = max(1, len(watch.samples) // 10)
    shown = watch.samples[::step]
    if watch.samples and shown[-1] is not watch.samples[-1]:
        shown.append(watch.samples[-1])
    for sample in shown:
        lines.append(
            f"| {sample.seconds:.0f} | {sample.rss_kb / 1024:.0f} | {sample.fds:,} |"
            f" {sample.output_bytes / MIB:.0f} |"
        )
    lines.append("")
    if stderr_tail:
        lines += ["afetch's stderr (last lines):", "", "```", *stderr_tail, "```", ""]
    return lines
