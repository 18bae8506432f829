"""afetch benchmark: afetch against curl, wget2 and plain aiohttp/httpx scripts on a local nginx.

    python bench/run.py            # full run: medians of 5 (many hosts: 3), every workload
                                   #   -> results/latest.md (~30 min on an idle machine)
    python bench/run.py --quick    # medians of 2, small sizes, no httpx script: ~4 min idle
                                   #   (11.8 min at load average 8 on the shared 2 cores)
    python bench/run.py --engines --only throughput latency many   # engine bake-off rows
                                   #   (bench/engines/*) -> results/bakeoff.md
    python bench/run.py --afetch-env curl:AFETCH_ENGINE=curl   # afetch on another engine: a row
    python bench/run.py --only c10k       # afetch alone, 1,000,000 lab URLs at -c 10,000
                                   #   (bench/lab_c10k.py)
    python bench/run.py --only internet   # the internet-like lab (bench/lab.py): 50,000 HTTPS
                                   #   URLs over 10,000 names, lab DNS, drawn latencies, dead and
                                   #   slow hosts; as root, needs iproute2, nftables, dnslib,
                                   #   trustme (--quick: 2,000 URLs over 500 names)

Needs Debian's nginx-light, libnginx-mod-http-echo and wget2 (``apt-get install -y nginx-light
libnginx-mod-http-echo wget2``) and the ``bench`` extra (pycurl, uvloop, pyinstrument).

Starts its own nginx with a temporary prefix (127.0.0.1 ports, plus one 0.0.0.0 port that only
answers 127.0.0.0/8, for the many-hosts workload over 10,000 loopback addresses), writes the URL
lists, runs every tool as a subprocess with output to /dev/null, and prints Markdown tables of
medians (wall, CPU = user + system from wait4, peak RSS) and ratios against the plain aiohttp
script and curl --parallel of the same run. Tools are interleaved round by round so that
background load hits them all alike. Ends with the issue-8 targets, met or not, per afetch row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.server
import os
import platform
import pty
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lab_c10k
import lab_plan
from lab import Lab
from lab_plan import LabSettings

HERE = Path(__file__).resolve().parent
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
INSTALL_HINT = "apt-get install -y nginx-light libnginx-mod-http-echo"
DELAY_S = 0.2
MANY_HOSTS = 10_000  # loopback addresses 127.0.x.y of the many-hosts workload
MIB = 1024 * 1024
CURL_PARALLEL_CAP = 300  # curl < 8.x refuses a --parallel-max above 300


# --------------------------------------------------------------------------------------------
# nginx


def _free_ports(count: int, *, host: str = "127.0.0.1") -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


NGINX_CONF = """\
{load_module}
worker_processes 1;
daemon off;
master_process on;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
{listen}
        root {prefix}/html;
        location = /1k {{ default_type application/octet-stream; }}
        location = /sleep {{ {sleep} }}
    }}
    server {{
        # Many hosts: every 127/8 address reaches a 0.0.0.0 listener on Linux; nothing else may.
        listen 0.0.0.0:{any_port} backlog=4096;
        allow 127.0.0.0/8;
        deny all;
        # A new connection for every request, whatever the client's pool does.
        keepalive_timeout 0;
        root {prefix}/html;
        location = /1k {{ default_type application/octet-stream; }}
    }}
}}
"""


class Nginx:
    """A private nginx on 127.0.0.1: ``/1k`` serves 1024 bytes, ``/sleep`` waits 200 ms."""

    def __init__(self, *, ports: int = 5) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench: nginx is missing; install it with: {INSTALL_HINT}")
        self.binary = binary
        self.has_echo = ECHO_MODULE.exists()
        self.ports = _free_ports(ports)
        self.any_port = _free_ports(1, host="0.0.0.0")[0]
        self.prefix = Path(tempfile.mkdtemp(prefix="afetch-bench-nginx-"))
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        prefix = self.prefix
        (prefix / "html").mkdir()
        (prefix / "tmp").mkdir()
        (prefix / "html" / "1k").write_bytes(b"x" * 1023 + b"\n")
        listen = "\n".join(f"        listen 127.0.0.1:{p} backlog=4096;" for p in self.ports)
        conf = NGINX_CONF.format(
            load_module=f"load_module {ECHO_MODULE};" if self.has_echo else "",
            # As root, nginx's workers would switch to "nobody" and lose the temp prefix.
            user="user root root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            listen=listen,
            any_port=self.any_port,
            sleep=f"echo_sleep {DELAY_S}; echo ok;" if self.has_echo else "return 200 ok;",
        )
        (prefix / "nginx.conf").write_text(conf)
        self.process = subprocess.Popen(
            [self.binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.ports[-1]), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    sys.exit("bench: nginx did not start (see its messages above)")
                time.sleep(0.05)
        if not self.has_echo:
            print(f"bench: no echo module ({INSTALL_HINT}): skipping delays", file=sys.stderr)
        # The many-hosts workload relies on 127.x.y.z reaching the 0.0.0.0 listener: check.
        with socket.create_connection(("127.0.39.250", self.any_port), timeout=5):
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def url(self, path: str, index: int, *, spread: int = 1) -> str:
        return f"http://127.0.0.1:{self.ports[index % spread]}{path}?n={index}"

    def many_host_url(self, index: int, *, hosts: int = MANY_HOSTS) -> str:
        """URL ``index`` on host ``index % hosts`` (127.0.x.y): a host recurs only every
        ``hosts`` URLs, so nearly every request needs a new connection anyway."""
        host = index % hosts
        return f"http://127.0.{host // 250}.{1 + host % 250}:{self.any_port}/1k?n={index}"


# --------------------------------------------------------------------------------------------
# running commands


@dataclass
class Outcome:
    seconds: float
    cpu_seconds: float  # user + system of the child: far less sensitive to other load
    max_rss_kb: int
    returncode: int


def run_command(
    argv: Sequence[str], *, stderr_tty: bool = False, env: dict[str, str] | None = None
) -> Outcome:
    """Run ``argv`` with stdout to /dev/null; wall time and the child's peak RSS (wait4)."""
    master = slave = None
    stderr: int = subprocess.DEVNULL
    if stderr_tty:
        master, slave = pty.openpty()
        stderr = slave
        drain = threading.Thread(target=_drain, args=(master,), daemon=True)
        drain.start()
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=full_env
    )
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:  # SIGTERM or ^C: the tool must not outlive the bench (or its lab)
        process.kill()
        process.wait()
        raise
    seconds = time.perf_counter() - t0
    process.returncode = os.waitstatus_to_exitcode(status)
    if slave is not None:
        os.close(slave)
    cpu = usage.ru_utime + usage.ru_stime
    return Outcome(seconds, cpu, usage.ru_maxrss, process.returncode)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass
    with contextlib.suppress(OSError):
        os.close(fd)


@dataclass
class Tool:
    name: str
    argv: list[str]
    runs: int
    stderr_tty: bool = False
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[], None] | None = None  # before every run (e.g. empty a cache folder)
    after: Callable[[], None] | None = None  # after every run (e.g. read a server's counters)
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    failures: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def median_cpu(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    @property
    def peak_rss_mib(self) -> float | None:
        return max(self.rss_kb) / 1024 if self.rss_kb else None


def run_rounds(tools: list[Tool], *, label: str) -> None:
    """Interleave the tools round by round; a tool stops once it has its own number of runs."""
    rounds = max(tool.runs for tool in tools)
    for round_no in range(rounds):
        for tool in tools:
            if round_no >= tool.runs:
                continue
            if tool.setup is not None:
                tool.setup()
            outcome = run_command(tool.argv, stderr_tty=tool.stderr_tty, env=tool.env)
            if tool.after is not None:
                tool.after()
            tool.times.append(outcome.seconds)
            tool.cpu.append(outcome.cpu_seconds)
            tool.rss_kb.append(outcome.max_rss_kb)
            if outcome.returncode != 0:
                tool.failures += 1
            print(
                f"  [{label}] round {round_no + 1}/{rounds} {tool.name}: {outcome.seconds:.2f} s"
                f" (cpu {outcome.cpu_seconds:.2f} s)"
                + (f" (exit {outcome.returncode})" if outcome.returncode else ""),
                file=sys.stderr,
                flush=True,
            )


# --------------------------------------------------------------------------------------------
# tools

# Bake-off contenders (bench/engines/*.py): label -> script and flags. Each takes
# URLS -c N [--per-host N] and writes one JSON line per URL.
ENGINES: dict[str, tuple[str, list[str]]] = {
    "curl-multi": ("curl_multi.py", []),
    "curl-multi+idle": ("curl_multi.py", ["--idle-reader"]),
    "curl-multi+uvloop": ("curl_multi.py", ["--uvloop"]),
    "curl-multi+idle+uvloop": ("curl_multi.py", ["--idle-reader", "--uvloop"]),
    "curl-multi+closecb": ("curl_multi.py", ["--close-hook"]),
    "curl-multi+closecb+uvloop": ("curl_multi.py", ["--close-hook", "--uvloop"]),
    "curl-multi+epoll": ("curl_multi.py", ["--own-epoll"]),
    "curl-multi+epoll+uvloop": ("curl_multi.py", ["--own-epoll", "--uvloop"]),
    "aiohttp-lean": ("aiohttp_lean.py", []),
    "aiohttp-lean+uvloop": ("aiohttp_lean.py", ["--uvloop"]),
}
BASELINE = "aiohttp script"


def afetch_argv(args: argparse.Namespace, variant: str | None = None) -> list[str]:
    if variant:
        return [args.python, str(HERE / "afetch_variant.py"), variant]
    return [args.python, "-m", "afetch"]


def write_lines(path: Path, lines: Iterator[str]) -> Path:
    with path.open("w") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


def afetch_tools(
    args: argparse.Namespace, urls: Path, concurrency: int, extra: Sequence[str] = ()
) -> list[Tool]:
    """afetch as shipped, plus its --variants, --compare trees and --afetch-env engines."""
    opts = [str(urls), "-c", str(concurrency), "--no-progress", "-q", *extra]
    tools = [Tool("afetch", [*afetch_argv(args), *opts], args.runs)]
    for variant in args.variants:
        tools.append(Tool(f"afetch[{variant}]", [*afetch_argv(args, variant), *opts], args.runs))
    for label, src in args.compare:
        tools.append(
            Tool(
                f"afetch[{label}]", [*afetch_argv(args), *opts], args.runs, env={"PYTHONPATH": src}
            )
        )
    for label, env in args.afetch_env:
        tools.append(Tool(f"afetch[{label}]", [*afetch_argv(args), *opts], args.runs, env=env))
    if args.afetch_shards > 1:
        tools.append(shards_tool(args, urls, concurrency, extra))
    return tools


def shards_tool(
    args: argparse.Namespace, urls: Path, concurrency: int, extra: Sequence[str]
) -> Tool:
    """``--afetch-shards N``: N afetch processes at once, ``--shard K/N`` each with -c/N (the
    same total in flight), each writing its own file: more cores the way docs/cron-and-pipelines.md
    shows today, to weigh what worker processes inside afetch could give."""
    count = args.afetch_shards
    each = max(1, concurrency // count)
    base = [*afetch_argv(args), str(urls), "-c", str(each), "--no-progress", "-q", *extra]
    parts = [
        shlex.join([*base, "--shard", f"{k}/{count}", "-o", f"{urls}.shard{k}.jsonl"])
        for k in range(count)
    ]
    # Each exit status counts: the row fails if any process does.
    script = "".join(f"{part} & p{k}=$!; " for k, part in enumerate(parts))
    script += "".join(f"wait $p{k}; s{k}=$?; " for k in range(count))
    script += " && ".join(f"[ $s{k} = 0 ]" for k in range(count))
    return Tool(
        f"afetch ×{count} processes (--shard, -c {each} each)", ["sh", "-c", script], args.runs
    )


def engine_tools(
    args: argparse.Namespace, urls: Path, concurrency: int, extra: Sequence[str] = ()
) -> list[Tool]:
    tools = []
    for label in args.engines:
        script, flags = ENGINES[label]
        argv = [args.python, str(HERE / "engines" / script), str(urls), "-c", str(concurrency)]
        tools.append(Tool(label, [*argv, *extra, *flags], args.runs))
    return tools


def peer_tools(
    args: argparse.Namespace,
    urls: Path,
    concurrency: int,
    *,
    workdir: Path,
    httpx_runs: int,
    afetch_extra: Sequence[str] = (),
) -> list[Tool]:
    """afetch rows, contenders, then the peers: the scripts, curl --parallel and wget2."""
    curl_cfg = workdir / f"{urls.stem}.curl"
    with urls.open() as source, curl_cfg.open("w") as cfg:
        for line in source:
            cfg.write(f'url = "{line.strip()}"\noutput = "/dev/null"\n')
    tools = afetch_tools(args, urls, concurrency, afetch_extra)
    tools += engine_tools(args, urls, concurrency, afetch_extra)
    script = [args.python]
    tools.append(
        Tool(
            BASELINE,
            [*script, str(HERE / "aiohttp_gather.py"), str(urls), str(concurrency)],
            args.runs,
        )
    )
    if args.uvloop_script:
        tools.append(
            Tool(
                "aiohttp script + uvloop",
                [*script, str(HERE / "aiohttp_gather.py"), str(urls), str(concurrency), "--uvloop"],
                args.runs,
            )
        )
    if httpx_runs:
        tools.append(
            Tool(
                "httpx script",
                [*script, str(HERE / "httpx_gather.py"), str(urls), str(concurrency)],
                httpx_runs,
            )
        )
    curl = shutil.which("curl")
    if curl:
        parallel = min(concurrency, CURL_PARALLEL_CAP)
        tools.append(
            Tool(
                f"curl --parallel ({parallel})",
                [
                    curl,
                    "-s",
                    "--fail",
                    "--parallel",
                    "--parallel-max",
                    str(parallel),
                    "-K",
                    str(curl_cfg),
                ],
                args.runs,
            )
        )
    wget2 = shutil.which("wget2")
    if wget2:
        tools.append(
            Tool(
                "wget2",
                [
                    wget2,
                    "-q",
                    "--no-config",
                    "--no-hsts",
                    "--no-robots",
                    f"--max-threads={concurrency}",
                    "-O",
                    "/dev/null",
                    "-i",
                    str(urls),
                ],
                args.runs,
            )
        )
    return tools


# --------------------------------------------------------------------------------------------
# workloads


@dataclass
class Target:
    """One issue-8 goal, checked against one afetch row."""

    workload: str
    tool: str
    goal: str
    measured: str
    met: bool


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def speed_table(title: str, tools: list[Tool], *, ideal: float | None = None) -> list[str]:
    base_tool = next((t for t in tools if t.name == BASELINE), None)
    curl_tool = next((t for t in tools if t.name.startswith("curl --parallel")), None)
    base = base_tool.median if base_tool else None
    base_cpu = base_tool.median_cpu if base_tool else None
    curl = curl_tool.median if curl_tool else None
    lines = [
        f"### {title}",
        "",
        "| tool | median wall s | × aiohttp script | × curl | median CPU s"
        " | CPU × aiohttp script | peak RSS MiB | runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tool in tools:
        median, cpu = tool.median, tool.median_cpu
        if median is None or cpu is None:
            continue
        ratio = f"{median / base:.2f}×" if base else "–"
        curl_ratio = f"{median / curl:.2f}×" if curl else "–"
        cpu_ratio = f"{cpu / base_cpu:.2f}×" if base_cpu else "–"
        failed = f" ({tool.failures} failed)" if tool.failures else ""
        lines.append(
            f"| {tool.name}{failed} | {median:.2f} | {ratio} | {curl_ratio} | {cpu:.2f} |"
            f" {cpu_ratio} | {tool.peak_rss_mib or 0:.0f} | {len(tool.times)} |"
        )
    lines += [
        "",
        "CPU = user + system seconds of the client process (wait4), less sensitive to other"
        " load than wall time; wget2 runs threads, so its CPU can exceed its wall time."
        " Peak RSS = the largest of the runs (ru_maxrss).",
    ]
    if ideal is not None:
        lines += ["", f"Ideal (latency alone): {ideal:.2f} s."]
    return [*lines, ""]


def afetch_rows(tools: list[Tool]) -> list[Tool]:
    return [t for t in tools if t.name.startswith("afetch") and t.median is not None]


def check_speed(
    args: argparse.Namespace,
    workload: str,
    tools: list[Tool],
    *,
    wall: float | None = None,
    cpu: float | None = None,
    curl: float | None = None,
    rss_mib: float | None = None,
) -> None:
    """Record the targets of ``workload`` for every afetch row (shipped and engine variants)."""
    base = next((t for t in tools if t.name == BASELINE), None)
    curl_tool = next((t for t in tools if t.name.startswith("curl --parallel")), None)
    for tool in afetch_rows(tools):
        if wall is not None and base is not None:
            r = _ratio(tool.median, base.median)
            if r is not None:
                goal, got = f"wall ≤ {wall}× script", f"{r:.2f}×"
                args.targets.append(Target(workload, tool.name, goal, got, r <= wall))
        if cpu is not None and base is not None:
            r = _ratio(tool.median_cpu, base.median_cpu)
            if r is not None:
                goal, got = f"CPU ≤ {cpu}× script", f"{r:.2f}×"
                args.targets.append(Target(workload, tool.name, goal, got, r <= cpu))
        if curl is not None and curl_tool is not None:
            r = _ratio(tool.median, curl_tool.median)
            if r is not None:
                goal, got = f"wall ≤ {curl}× curl --parallel", f"{r:.2f}×"
                args.targets.append(Target(workload, tool.name, goal, got, r <= curl))
        if rss_mib is not None and tool.peak_rss_mib is not None:
            got = f"{tool.peak_rss_mib:.1f} MiB"
            met = tool.peak_rss_mib <= rss_mib
            args.targets.append(Target(workload, tool.name, f"peak RSS ≤ {rss_mib} MiB", got, met))


def throughput(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count, concurrency = args.throughput_urls, 50
    urls = write_lines(workdir / "w1.txt", (nginx.url("/1k", i) for i in range(count)))
    tools = peer_tools(args, urls, concurrency, workdir=workdir, httpx_runs=args.httpx_runs)
    run_rounds(tools, label="throughput")
    check_speed(args, "1. throughput", tools, wall=0.5, curl=2.0)
    return speed_table(f"1. Throughput: {count:,} URLs × 1 KB, -c {concurrency}", tools)


def latency(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count, concurrency = args.latency_urls, 500
    urls = write_lines(workdir / "w2.txt", (nginx.url("/sleep", i, spread=4) for i in range(count)))
    tools = peer_tools(args, urls, concurrency, workdir=workdir, httpx_runs=args.httpx_runs)
    run_rounds(tools, label="latency")
    check_speed(args, "2. latency", tools, wall=0.95, cpu=0.5)
    ideal = count / concurrency * DELAY_S
    return speed_table(
        f"2. Latency-bound: {count:,} URLs, {DELAY_S * 1000:.0f} ms server delay, 4 ports, "
        f"-c {concurrency}",
        tools,
        ideal=ideal,
    )


def many(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count, concurrency, per_host = args.many_urls, 200, 2
    hosts = min(MANY_HOSTS, count)
    urls = write_lines(
        workdir / "many.txt", (nginx.many_host_url(i, hosts=hosts) for i in range(count))
    )
    tools = peer_tools(
        args,
        urls,
        concurrency,
        workdir=workdir,
        httpx_runs=0,
        afetch_extra=["--per-host", str(per_host)],
    )
    for tool in tools:
        tool.runs = args.many_runs
    run_rounds(tools, label="many")
    check_speed(args, "6. many hosts", tools, wall=1.0, rss_mib=80)
    return speed_table(
        f"6. Many hosts: {count:,} URLs × 1 KB over {hosts:,} loopback addresses"
        f" (127.0.x.y), a new connection per request (server keepalive off); afetch and the"
        f" contenders -c {concurrency} --per-host {per_host}, the script, curl and wget2"
        f" -c {concurrency}",
        tools,
    )


def options(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count, concurrency = args.throughput_urls, 50
    urls = workdir / "w1.txt"
    if not urls.exists():
        write_lines(urls, (nginx.url("/1k", i) for i in range(count)))
    base = [*afetch_argv(args), str(urls), "-c", str(concurrency), "--no-progress", "-q"]
    # afetch as installed, then each --compare tree (its rows against its own plain run).
    trees: list[tuple[str, dict[str, str]]] = [("", {})]
    trees += [(f"[{label}]", {"PYTHONPATH": src}) for label, src in args.compare]
    groups: list[list[Tool]] = []
    for suffix, env in trees:
        tag = suffix.strip("[]") or "shipped"
        cold, warm = workdir / f"cache-cold-{tag}", workdir / f"cache-warm-{tag}"

        def empty_cold(cold: Path = cold) -> None:
            shutil.rmtree(cold, ignore_errors=True)

        def on(cache: Path) -> list[str]:
            state = workdir / f"state-{cache.name}"
            return [*base, "--state", str(state), "--cache", str(cache), "--hash", "--ordered"]

        # Fill the warm cache once: its runs then send conditional requests and get 304s.
        run_command(on(warm), env=env)
        groups.append(
            [
                Tool(f"afetch{suffix} (plain)", base, args.runs, env=env),
                Tool(
                    f"afetch{suffix} --state --cache (cold) --hash --ordered",
                    on(cold),
                    args.runs,
                    env=env,
                    setup=empty_cold,
                ),
                Tool(
                    f"afetch{suffix} --state --cache (warm, 304s) --hash --ordered",
                    on(warm),
                    args.runs,
                    env=env,
                ),
            ]
        )
    run_rounds([tool for group in groups for tool in group], label="options")
    lines = [
        f"### 7. Options on: {count:,} URLs × 1 KB, -c {concurrency}",
        "",
        "| mode | median wall s | median CPU s | CPU × plain | peak RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for group in groups:
        plain = group[0]
        for tool in group:
            r = _ratio(tool.median_cpu, plain.median_cpu) or 0.0
            lines.append(
                f"| {tool.name} | {tool.median or 0:.2f} | {tool.median_cpu or 0:.2f} |"
                f" {r:.2f}× | {tool.peak_rss_mib or 0:.0f} |"
            )
            if tool is not plain and group is groups[0]:
                args.targets.append(
                    Target("7. options on", tool.name, "CPU ≤ 1.3× plain", f"{r:.2f}×", r <= 1.3)
                )
    lines += [
        "",
        "Cold: the cache folder is emptied before each run (every response is stored);"
        " warm: filled by an earlier run, so the server answers 304.",
    ]
    return [*lines, ""]


def memory(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    small, large = args.memory_urls
    rows = []
    results = {}
    for count in (small, large):
        urls = write_lines(workdir / f"m{count}.txt", (nginx.url("/1k", i) for i in range(count)))
        tool = Tool(
            f"afetch {count:,} URLs",
            [*afetch_argv(args), str(urls), "-c", "50", "--no-progress", "-q"],
            args.memory_runs,
        )
        run_rounds([tool], label="memory")
        rss_mb = max(tool.rss_kb) / 1024
        results[count] = rss_mb
        rows.append(f"| {count:,} | {rss_mb:.1f} | {tool.median:.2f} |")
    ratio = results[large] / results[small]
    args.targets.append(
        Target("3. memory", "afetch", f"{large:,} ≤ 1.2× {small:,}", f"{ratio:.2f}×", ratio <= 1.2)
    )
    args.targets.append(
        Target(
            "3. memory",
            "afetch",
            f"{large:,}: peak RSS ≤ 80 MiB",
            f"{results[large]:.1f} MiB",
            results[large] <= 80,
        )
    )
    return [
        f"### 3. Memory: peak RSS of afetch, -c 50 (ratio {large:,} / {small:,}: {ratio:.2f}×)",
        "",
        "| URLs | peak RSS MiB | median s |",
        "|---:|---:|---:|",
        *rows,
        "",
    ]


def progress(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count = args.throughput_urls
    urls = workdir / "w1.txt"
    if not urls.exists():
        write_lines(urls, (nginx.url("/1k", i) for i in range(count)))
    base = [*afetch_argv(args), str(urls), "-c", "50"]
    tools = [
        Tool("afetch --no-progress -q", [*base, "--no-progress", "-q"], args.runs, stderr_tty=True),
        Tool("afetch --progress (and summary)", [*base, "--progress"], args.runs, stderr_tty=True),
    ]
    run_rounds(tools, label="progress")
    off, on = (tool.median or 0.0 for tool in tools)
    ratio = on / off if off else 0.0
    args.targets.append(
        Target("4. progress", "afetch", "on ≤ 1.1× off", f"{ratio:.2f}×", ratio <= 1.1)
    )
    lines = [
        f"### 4. Progress cost: {count:,} URLs × 1 KB, -c 50, stderr on a terminal "
        f"(on / off: {on / off:.2f}×)",
        "",
        "| mode | median s |",
        "|---|---:|",
    ]
    lines += [f"| {tool.name} | {tool.median:.2f} |" for tool in tools]
    return [*lines, ""]


class _OneAnswer(http.server.BaseHTTPRequestHandler):
    """200 and three bytes, kept alive: the server of the one-URL start-up rows."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def one_url_server(workdir: Path) -> Iterator[Path]:
    """A file holding one URL of a loopback server that answers at once."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OneAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield write_lines(
            workdir / "one-url.txt", iter([f"http://127.0.0.1:{server.server_port}/"])
        )
    finally:
        server.shutdown()
        server.server_close()


def startup(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Start to exit: --version, --help, a usage error and a one-URL run, for afetch as installed
    and each --compare tree, against ``python -c pass`` (and curl on the same URL) of the same
    rounds. CPU medians vary less than wall ones when other work shares the machine."""
    runs = args.startup_runs
    with one_url_server(workdir) as urls:
        pairs = [("--version", ["--version"]), ("--help", ["--help"])]
        pairs += [("usage error", ["-c", "0"]), ("one URL", [str(urls)])]
        floor = Tool("python -c pass", [args.python, "-c", "pass"], runs)
        tools = [floor]
        if shutil.which("curl"):
            url = urls.read_text().strip()
            tools.append(Tool("curl, one URL", ["curl", "-s", "-o", "/dev/null", url], runs))
        trees = [("", {})] + [(f"[{label}]", {"PYTHONPATH": src}) for label, src in args.compare]
        for tag, env in trees:
            for what, extra in pairs:
                argv = [*afetch_argv(args), *extra]
                tools.append(Tool(f"afetch{tag} {what}", argv, runs, env=env))
        tools.append(Tool("python -c 'import afetch'", [args.python, "-c", "import afetch"], runs))
        # The floor of a one-URL run: what it cannot do without (the loop, the CLI, libcurl).
        floor_run = "import asyncio, typer, pycurl"
        tools.append(Tool(f"python -c '{floor_run}'", [args.python, "-c", floor_run], runs))
        run_rounds(tools, label="startup")
        heaviest = heaviest_imports(args, [str(urls)])
    wall, cpu = floor.median or 1.0, floor.median_cpu or 1.0
    lines = [
        "### 5. Start-up (start to exit)",
        "",
        "| command | median ms | × `python -c pass` | CPU ms | CPU × |",
        "|---|---:|---:|---:|---:|",
    ]
    for tool in tools:
        median, median_cpu = tool.median or 0.0, tool.median_cpu or 0.0
        lines.append(
            f"| `{tool.name}` | {median * 1000:.0f} | {median / wall:.2f} "
            f"| {median_cpu * 1000:.0f} | {median_cpu / cpu:.2f} |"
        )
    goals = {"afetch --version": 0.080, "afetch one URL": 0.100}
    for tool in tools:
        if tool.name in goals and tool.median is not None:
            goal = goals[tool.name]
            args.targets.append(
                Target(
                    "5. start-up",
                    tool.name,
                    f"≤ {goal * 1000:.0f} ms",
                    f"{tool.median * 1000:.0f} ms (python -c pass {wall * 1000:.0f} ms)",
                    tool.median <= goal,
                )
            )
    lines += [
        "",
        "Heaviest imports of a one-URL run (`python -X importtime`, cumulative, first import "
        "of each package):",
        "",
    ]
    lines += [f"    {line}" for line in heaviest]
    return [*lines, ""]


def heaviest_imports(args: argparse.Namespace, argv: Sequence[str], top: int = 8) -> list[str]:
    done = subprocess.run(
        [args.python, "-X", "importtime", "-m", "afetch", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    # The first import of each top-level package carries its whole cost (cumulative column).
    first: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            if package not in ("afetch", "encodings", "site", "runpy"):
                first[package] = max(first.get(package, 0), int(match.group(1)))
    rows = sorted(((us, name) for name, us in first.items()), reverse=True)
    return [f"{us / 1000:7.1f} ms  {name}" for us, name in rows[:top]]


def lab_settings(args: argparse.Namespace) -> LabSettings:
    return LabSettings(
        names=args.internet_names,
        urls=args.internet_urls,
        seed=args.lab_seed,
        dead_share=args.lab_dead_share,
        drip_share=args.lab_drip_share,
        dns_loss=args.lab_dns_loss,
        dns_p50_ms=args.lab_dns_p50_ms,
    )


def lab_flags(tool: Tool, settings: LabSettings, ca: Path) -> None:
    """The same deadlines and trust for every client: connect (DNS + TCP + TLS) and whole
    request, no retries (curl's default; afetch and wget2 would retry), the lab's CA."""
    connect, total = str(settings.connect_timeout_s), str(settings.max_time_s)
    if tool.name.startswith("curl --parallel"):
        flags = ["--cacert", str(ca), "--connect-timeout", connect, "--max-time", total]
        tool.argv[1:1] = flags
    elif tool.name == "wget2":
        # wget2 has no whole-request deadline; its read timeout bounds a silent server.
        tool.argv[1:1] = [
            f"--ca-certificate={ca}",
            "--tries=1",
            f"--connect-timeout={connect}",
            f"--read-timeout={total}",
        ]
    elif tool.name.startswith("aiohttp script"):
        tool.argv += ["--connect-timeout", connect, "--timeout", total]
    tool.env["SSL_CERT_FILE"] = str(ca)


def internet(args: argparse.Namespace, workdir: Path) -> list[str]:
    """HTTPS to 10,000 names through the lab's DNS, latencies drawn per host, dead and slow hosts
    (bench/lab.py); every client runs inside the lab's network namespace."""
    settings = lab_settings(args)
    concurrency = args.internet_concurrency
    with Lab(settings, workdir, servers=args.lab_servers) as lab:
        urls = write_lines(workdir / "internet.txt", iter(lab.urls))
        afetch_extra = lab.afetch_flags()
        tools = peer_tools(
            args, urls, concurrency, workdir=workdir, httpx_runs=0, afetch_extra=afetch_extra
        )
        tools = [tool for tool in tools if tool.name not in ENGINES]
        measured: dict[str, list[dict[str, float]]] = {}
        for tool in tools:
            lab_flags(tool, settings, lab.ca)
            tool.argv = lab.wrap(tool.argv)
            tool.runs = args.internet_runs
            tool.setup, tool.after = _lab_meter(lab, measured.setdefault(tool.name, []))
        run_rounds(tools, label="internet")
        ideal, bound = lab_plan.ideal_seconds(settings, lab.hosts, lab.urls, concurrency)
        curl_ideal, _ = lab_plan.ideal_seconds(
            settings, lab.hosts, lab.urls, min(concurrency, CURL_PARALLEL_CAP)
        )
        plan = lab_plan.summary(settings, lab.hosts, lab.urls)
    kinds = plan["kinds"]
    assert isinstance(kinds, dict)
    title = (
        f"8. Internet-like lab: {plan['urls']:,} HTTPS URLs over {plan['names']:,} names"
        f" (lab DNS, one CA, SNI), -c {concurrency}"
    )
    lines = speed_table(title, tools, ideal=ideal)
    lines += [
        'Every client exits non-zero here, as the dead hosts\' URLs fail: "failed" counts those'
        " exits; the URLs each fetched whole are in the second table.",
        "",
        f"Ideal: the URLs started in file order on {concurrency} slots, each taking its host's"
        f" drawn latency (first URL of a name: + its DNS latency); lower bound {bound:.2f} s;"
        f" on curl's {min(concurrency, CURL_PARALLEL_CAP)} slots {curl_ideal:.2f} s.",
        "",
        f"Hosts: {kinds['ok']:,} answering (latency p50 {plan['latency_p50_ms']:.0f} ms,"
        f" p90 {plan['latency_p90_ms']:.0f} ms, p99 {plan['latency_p99_ms']:.0f} ms, mean"
        f" {plan['latency_mean_ms']:.0f} ms), {kinds['dead']:,} dead (SYNs dropped; a URL costs"
        f" the {settings.connect_timeout_s:g} s connect timeout), {kinds['drip']:,} slow-drip"
        f" (the body over {settings.drip_s:g} s); {plan['dns_lossy_names']:,} names whose first"
        f" DNS query of each type is lost (resolver timeout {settings.resolver_timeout_s} s)."
        f" Every client: connect timeout {settings.connect_timeout_s:g} s, request deadline"
        f" {settings.max_time_s:g} s, no retries. Seed {settings.seed}.",
        "",
        "| tool | URLs fetched whole (of "
        f"{plan['servable_urls']:,} servable) | connections | lab CPU s per run |",
        "|---|---:|---:|---:|",
    ]
    for tool in tools:
        samples = measured.get(tool.name, [])
        if samples:
            responses = statistics.median(s["responses"] for s in samples)
            connections = statistics.median(s["connections"] for s in samples)
            cpu = statistics.median(s["cpu"] for s in samples)
            lines.append(f"| {tool.name} | {responses:,.0f} | {connections:,.0f} | {cpu:.2f} |")
    lines += [
        "",
        f"Medians per run, counted by the lab's {lab.servers} server processes (responses sent"
        " whole; lab CPU: DNS and HTTPS servers together, to see that the lab is not the"
        " bottleneck).",
        "",
    ]
    return lines


def _lab_meter(
    lab: Lab, samples: list[dict[str, float]]
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Hooks around each run: what the lab counted (and its CPU) during that run."""
    state: dict[str, float] = {}

    def snapshot() -> dict[str, float]:
        return {**lab.counters(), "cpu": lab.server_cpu()}

    def before() -> None:
        state.update(snapshot())

    def after() -> None:
        now = snapshot()
        samples.append({key: now[key] - state[key] for key in now})

    return before, after


# --------------------------------------------------------------------------------------------


def machine(args: argparse.Namespace) -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError:
            return "not installed"
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0] if text else "?"

    libs = version(
        [
            args.python,
            "-c",
            "import aiohttp, pycurl, uvloop; print(pycurl.version, '; aiohttp',"
            " aiohttp.__version__, '; uvloop', uvloop.__version__)",
        ]
    )
    return [
        f"Machine: {os.cpu_count()} cores (`nproc`), {cpu}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"Peers: {version(['curl', '--version'])}; {version(['wget2', '--version'])}; "
        f"{version(['nginx', '-v'])}",
        f"Libraries: {libs}",
        f"Command: `{' '.join(['python', 'bench/run.py', *args.argv])}`",
        f"Load average at start: {_loadavg()} (the machine is shared: other engineers' work was"
        " running; tools take turns round by round so it hits them alike)",
        "",
    ]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def targets_table(targets: list[Target]) -> list[str]:
    if not targets:
        return []
    lines = [
        "### Targets (issue 8)",
        "",
        "| workload | row | goal | measured | |",
        "|---|---|---|---|---|",
    ]
    for t in targets:
        verdict = "met" if t.met else "NOT met"
        lines.append(f"| {t.workload} | {t.tool} | {t.goal} | {t.measured} | {verdict} |")
    return [*lines, ""]


WORKLOADS = (
    "throughput",
    "latency",
    "many",
    "memory",
    "options",
    "progress",
    "startup",
    "internet",
    "c10k",
)
NO_NGINX = {"startup", "internet", "c10k"}  # workloads that bring their own servers or need none


def _env_spec(text: str) -> tuple[str, dict[str, str]]:
    label, sep, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if "=" in item)
    if not sep or not label or not env:
        raise argparse.ArgumentTypeError(f"expected LABEL:VAR=VALUE[,VAR=VALUE], got {text!r}")
    return label, env


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 runs, small sizes, no httpx: a few minutes"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (median)")
    parser.add_argument("--httpx-runs", type=int, default=None, help="runs of the httpx script")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--python", default=sys.executable, help="interpreter with afetch")
    parser.add_argument("--throughput-urls", type=int, default=None, help="default 10,000")
    parser.add_argument("--latency-urls", type=int, default=None, help="default 5,000")
    parser.add_argument(
        "--many-urls", type=int, default=None, help="many-hosts URL count (default 100,000)"
    )
    parser.add_argument(
        "--memory-urls", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE")
    )
    parser.add_argument(
        "--many-runs",
        type=int,
        default=None,
        help="runs per tool of many hosts (default 3, or --runs if smaller: 100k URLs take long)",
    )
    parser.add_argument("--memory-runs", type=int, default=1)
    lab = parser.add_argument_group("internet-like lab (--only internet; bench/lab.py)")
    lab.add_argument("--internet-urls", type=int, default=None, help="default 50,000")
    lab.add_argument("--internet-names", type=int, default=None, help="default 10,000")
    lab.add_argument("--internet-concurrency", type=int, default=500)
    lab.add_argument("--internet-runs", type=int, default=None, help="default 3 (or --runs)")
    lab.add_argument("--lab-seed", type=int, default=LabSettings.seed)
    lab.add_argument("--lab-dead-share", type=float, default=LabSettings.dead_share)
    lab.add_argument("--lab-drip-share", type=float, default=LabSettings.drip_share)
    lab.add_argument("--lab-dns-loss", type=float, default=LabSettings.dns_loss)
    lab.add_argument(
        "--lab-dns-p50-ms",
        type=float,
        default=LabSettings.dns_p50_ms,
        help="median DNS latency, ms (p99: 10x; 0: answers at once)",
    )
    lab.add_argument(
        "--lab-servers", type=int, default=None, help="HTTPS server processes (default: cores)"
    )
    lab_c10k.add_arguments(parser)
    parser.add_argument(
        "--afetch-shards",
        type=int,
        default=1,
        metavar="N",
        help="also run N afetch processes at once over --shard K/N, -c/N each (a row per workload)",
    )
    parser.add_argument("--startup-runs", type=int, default=None)
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="extra afetch rows with another transport/loop (see bench/afetch_variant.py)",
    )
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        type=lambda text: tuple(text.split("=", 1)),
        metavar="LABEL=SRC",
        help="extra afetch rows importing afetch from another source tree (A/B a change)",
    )
    parser.add_argument(
        "--afetch-env",
        nargs="*",
        default=[],
        type=_env_spec,
        metavar="LABEL:VAR=VALUE",
        help="extra afetch rows with environment settings, e.g. an engine: curl:AFETCH_ENGINE=curl",
    )
    parser.add_argument(
        "--engines",
        nargs="*",
        default=None,
        choices=list(ENGINES),
        help="bake-off contender rows from bench/engines (no names: all of them)",
    )
    parser.add_argument(
        "--uvloop-script",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the aiohttp script on uvloop",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="write the Markdown here too (default: bench/results/latest.md for a full run,"
        " bakeoff.md with --engines, quick.md with --quick; '-' for none)",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.argv = raw
    args.targets = []
    if args.engines is not None and not args.engines:
        args.engines = list(ENGINES)
    args.engines = args.engines or []
    if args.quick:
        args.runs = min(args.runs, 2)
    small = args.quick
    if args.throughput_urls is None:
        args.throughput_urls = 5_000 if small else 10_000
    if args.latency_urls is None:
        args.latency_urls = 2_500 if small else 5_000
    if args.many_urls is None:
        args.many_urls = 10_000 if small else 100_000
    if args.httpx_runs is None:
        args.httpx_runs = 0 if small else 1
    if args.many_runs is None:
        args.many_runs = min(args.runs, 3)
    if args.internet_urls is None:
        args.internet_urls = 2_000 if small else 50_000
    if args.internet_names is None:
        args.internet_names = 500 if small else 10_000
    if args.internet_runs is None:
        args.internet_runs = min(args.runs, 3)
    if args.memory_urls is None:
        args.memory_urls = (10_000, 50_000) if small else (20_000, 200_000)
    if args.startup_runs is None:
        args.startup_runs = 5 if small else 15
    if args.output is None:
        name = "quick.md" if args.quick else "bakeoff.md" if args.engines else "latest.md"
        args.output = HERE / "results" / name
    return args


def _raise_fd_limit() -> None:
    """-c 500 and 10,000 hosts need more descriptors than a default soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def compile_afetch(args: argparse.Namespace) -> None:
    """Byte-compile the afetch trees under test, as installing a wheel does: an editable install
    run with PYTHONDONTWRITEBYTECODE=1 would otherwise compile its sources on every run (~80 ms
    of CPU that no installed afetch pays), while the peers' site-packages are compiled."""
    found = subprocess.run(
        [args.python, "-c", "import afetch, os; print(os.path.dirname(afetch.__file__))"],
        capture_output=True,
        text=True,
        check=False,
    )
    trees = [str(Path(src) / "afetch") for _, src in args.compare]
    if found.returncode == 0:
        trees.append(found.stdout.strip())
    if trees:  # best effort: a tree that cannot be compiled just runs slower
        subprocess.run(
            [args.python, "-m", "compileall", "-q", *trees],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    compile_afetch(args)
    # SIGTERM (and SIGINT, which Python already raises) unwind through Nginx.__exit__ and
    # Lab.__exit__, so an interrupted benchmark leaves no nginx, lab server or namespace behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    _raise_fd_limit()
    started = time.monotonic()
    lines = ["## afetch benchmark", "", *machine(args)]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="afetch-bench-")))
        needs_nginx = any(name not in NO_NGINX for name in args.only)
        nginx = stack.enter_context(Nginx()) if needs_nginx else None
        for name in args.only:
            print(f"bench: {name}", file=sys.stderr, flush=True)
            if name == "startup":
                lines += startup(args, workdir)
            elif name == "internet":
                lines += internet(args, workdir)
            elif name == "c10k":
                settings = dataclasses.replace(
                    lab_settings(args), names=args.c10k_names, urls=args.c10k_urls
                )
                lines += lab_c10k.c10k(args, workdir, settings)
            elif nginx is not None and (name != "latency" or nginx.has_echo):
                lines += globals()[name](args, nginx, workdir)
    lines += targets_table(args.targets)
    minutes = (time.monotonic() - started) / 60
    lines += [f"Took {minutes:.1f} minutes; load average at the end: {_loadavg()}.", ""]
    text = "\n".join(lines)
    print(text)
    if str(args.output) != "-":
        args.output.write_text(text + "\n")
        print(f"bench: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
