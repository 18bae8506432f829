"""afetch benchmark: afetch against curl, wget2 and plain aiohttp/httpx scripts on a local nginx.

    python bench/run.py            # full run: medians of 5, every workload (~10 minutes)
    python bench/run.py --quick    # medians of 2, smaller memory sizes, no httpx script

Starts its own nginx (Debian's nginx-light + libnginx-mod-http-echo) with a temporary prefix on
127.0.0.1, writes the URL lists, runs every tool as a subprocess with output to /dev/null, and
prints Markdown tables of medians and ratios against the plain aiohttp script. Tools are
interleaved round by round so that background load hits them all alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import pty
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
INSTALL_HINT = "apt-get install -y nginx-light libnginx-mod-http-echo"
DELAY_S = 0.2
CURL_PARALLEL_CAP = 300  # curl < 8.x refuses a --parallel-max above 300


# --------------------------------------------------------------------------------------------
# nginx


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
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
    _, status, usage = os.wait4(process.pid, 0)
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


def run_rounds(tools: list[Tool], *, label: str) -> None:
    """Interleave the tools round by round; a tool stops once it has its own number of runs."""
    rounds = max(tool.runs for tool in tools)
    for round_no in range(rounds):
        for tool in tools:
            if round_no >= tool.runs:
                continue
            outcome = run_command(tool.argv, stderr_tty=tool.stderr_tty, env=tool.env)
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


def afetch_argv(args: argparse.Namespace, variant: str | None = None) -> list[str]:
    if variant:
        return [args.python, str(HERE / "afetch_variant.py"), variant]
    return [args.python, "-m", "afetch"]


def write_lines(path: Path, lines: Iterator[str]) -> Path:
    with path.open("w") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


def peer_tools(
    args: argparse.Namespace, urls: Path, concurrency: int, *, workdir: Path, httpx_runs: int
) -> list[Tool]:
    curl_cfg = workdir / f"{urls.stem}.curl"
    with urls.open() as source, curl_cfg.open("w") as cfg:
        for line in source:
            cfg.write(f'url = "{line.strip()}"\noutput = "/dev/null"\n')
    tools = [
        Tool(
            "afetch",
            [*afetch_argv(args), str(urls), "-c", str(concurrency), "--no-progress", "-q"],
            args.runs,
        )
    ]
    for variant in args.variants:
        tools.append(
            Tool(
                f"afetch[{variant}]",
                [
                    *afetch_argv(args, variant),
                    str(urls),
                    "-c",
                    str(concurrency),
                    "--no-progress",
                    "-q",
                ],
                args.runs,
            )
        )
    for label, src in args.compare:
        tools.append(
            Tool(
                f"afetch[{label}]",
                [*afetch_argv(args), str(urls), "-c", str(concurrency), "--no-progress", "-q"],
                args.runs,
                env={"PYTHONPATH": src},
            )
        )
    script = [args.python]
    tools.append(
        Tool(
            "aiohttp script",
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


def speed_table(title: str, tools: list[Tool], *, ideal: float | None = None) -> list[str]:
    base_tool = next((t for t in tools if t.name == "aiohttp script"), None)
    base = base_tool.median if base_tool else None
    base_cpu = base_tool.median_cpu if base_tool else None
    lines = [
        f"### {title}",
        "",
        "| tool | median wall s | × aiohttp script | median CPU s | CPU × aiohttp script | runs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tool in tools:
        median, cpu = tool.median, tool.median_cpu
        if median is None or cpu is None:
            continue
        ratio = f"{median / base:.2f}×" if base else "–"
        cpu_ratio = f"{cpu / base_cpu:.2f}×" if base_cpu else "–"
        failed = f" ({tool.failures} failed)" if tool.failures else ""
        lines.append(
            f"| {tool.name}{failed} | {median:.2f} | {ratio} | {cpu:.2f} | {cpu_ratio} |"
            f" {len(tool.times)} |"
        )
    lines += [
        "",
        "CPU = user + system seconds of the client process (wait4), less sensitive to other"
        " load than wall time; wget2 runs threads, so its CPU can exceed its wall time.",
    ]
    if ideal is not None:
        lines += ["", f"Ideal (latency alone): {ideal:.2f} s."]
    return [*lines, ""]


def throughput(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count, concurrency = args.throughput_urls, 50
    urls = write_lines(workdir / "w1.txt", (nginx.url("/1k", i) for i in range(count)))
    tools = peer_tools(args, urls, concurrency, workdir=workdir, httpx_runs=args.httpx_runs)
    run_rounds(tools, label="throughput")
    return speed_table(f"1. Throughput: {count:,} URLs × 1 KB, -c {concurrency}", tools)


def latency(args: argparse.Namespace, nginx: Nginx, workdir: Path) -> list[str]:
    count, concurrency = args.latency_urls, 500
    urls = write_lines(workdir / "w2.txt", (nginx.url("/sleep", i, spread=4) for i in range(count)))
    tools = peer_tools(args, urls, concurrency, workdir=workdir, httpx_runs=args.httpx_runs)
    run_rounds(tools, label="latency")
    ideal = count / concurrency * DELAY_S
    return speed_table(
        f"2. Latency-bound: {count:,} URLs, {DELAY_S * 1000:.0f} ms server delay, 4 ports, "
        f"-c {concurrency}",
        tools,
        ideal=ideal,
    )


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
    return [
        f"### 3. Memory: peak RSS of afetch, -c 50 (ratio {large:,} / {small:,}: {ratio:.2f}×)",
        "",
        "| URLs | peak RSS MB | median s |",
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
    lines = [
        f"### 4. Progress cost: {count:,} URLs × 1 KB, -c 50, stderr on a terminal "
        f"(on / off: {on / off:.2f}×)",
        "",
        "| mode | median s |",
        "|---|---:|",
    ]
    lines += [f"| {tool.name} | {tool.median:.2f} |" for tool in tools]
    return [*lines, ""]


def startup(args: argparse.Namespace) -> list[str]:
    tools = [
        Tool("python -c pass", [args.python, "-c", "pass"], args.startup_runs),
        Tool("afetch --version", [*afetch_argv(args), "--version"], args.startup_runs),
        Tool("python -c 'import afetch'", [args.python, "-c", "import afetch"], args.startup_runs),
    ]
    run_rounds(tools, label="startup")
    lines = ["### 5. Start-up", "", "| command | median ms |", "|---|---:|"]
    lines += [f"| `{tool.name}` | {(tool.median or 0) * 1000:.0f} |" for tool in tools]
    lines += [
        "",
        "Heaviest imports of `afetch --version` (`python -X importtime`, cumulative):",
        "",
    ]
    lines += [f"    {line}" for line in heaviest_imports(args)]
    return [*lines, ""]


def heaviest_imports(args: argparse.Namespace, top: int = 8) -> list[str]:
    done = subprocess.run(
        [args.python, "-X", "importtime", "-m", "afetch", "--version"],
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


# --------------------------------------------------------------------------------------------


def machine() -> list[str]:
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

    return [
        f"Machine: {os.cpu_count()} cores (`nproc`), {cpu}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"Peers: {version(['curl', '--version'])}; {version(['wget2', '--version'])}; "
        f"{version(['nginx', '-v'])}",
        "",
    ]


WORKLOADS = ("throughput", "latency", "memory", "progress", "startup")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs, small memory sizes, no httpx")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (median)")
    parser.add_argument("--httpx-runs", type=int, default=None, help="runs of the httpx script")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--python", default=sys.executable, help="interpreter with afetch")
    parser.add_argument("--throughput-urls", type=int, default=10_000)
    parser.add_argument("--latency-urls", type=int, default=5_000)
    parser.add_argument(
        "--memory-urls", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE")
    )
    parser.add_argument("--memory-runs", type=int, default=1)
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
        "--uvloop-script",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the aiohttp script on uvloop (afetch's CLI uses uvloop)",
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 2)
    if args.httpx_runs is None:
        args.httpx_runs = 0 if args.quick else 1
    if args.memory_urls is None:
        args.memory_urls = (10_000, 50_000) if args.quick else (20_000, 200_000)
    if args.startup_runs is None:
        args.startup_runs = 5 if args.quick else 15
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lines = ["## afetch benchmark", "", *machine()]
    with tempfile.TemporaryDirectory(prefix="afetch-bench-") as tmp, Nginx() as nginx:
        workdir = Path(tmp)
        for name in args.only:
            if name == "latency" and not nginx.has_echo:
                continue
            print(f"bench: {name}", file=sys.stderr, flush=True)
            if name == "startup":
                lines += startup(args)
            else:
                lines += globals()[name](args, nginx, workdir)
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
