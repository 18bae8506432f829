"""What the progress display costs: CPU of a 10k-URL run with the live table forced on vs off.

Runs the real CLI (``python -m afetch``) over N URLs served by the loopback server (in this
process, so client and server do not share a GIL), interleaving the modes round by round, and
prints the median CPU time (user + system, from ``wait4``) of the afetch process per mode with
its ratio to ``off``. Modes:

* ``off``: ``--no-progress -q``;
* ``live``: ``--progress -q`` with ``TTY_COMPATIBLE=1`` (Rich's ``force_terminal``) and stderr
  into /dev/null: the table is laid out, rendered and written 4 times a second as on a terminal;
* ``plain``: ``--progress -q --progress-interval 1``, stderr into /dev/null (not a terminal).

Then, in this process, the cost of one redraw of the table (render + write into a string) and
the per-attempt cost of the scheduler's gauge hook::

    python bench/progress_cost.py                 # 10,000 URLs, 5 rounds
    python bench/progress_cost.py --urls 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.live import Live

from afetch._loopback import LoopbackServer
from afetch._stats import Stats
from afetch.output.terminal import ProgressView
from afetch.schedule.gauge import Gauge

MODES: dict[str, tuple[list[str], dict[str, str]]] = {
    "off": (["--no-progress"], {}),
    "live": (["--progress"], {"TTY_COMPATIBLE": "1", "COLUMNS": "120", "LINES": "40"}),
    "plain": (["--progress", "--progress-interval", "1"], {"TTY_COMPATIBLE": "0"}),
}


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the afetch process) for one run."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    return elapsed, usage.ru_utime + usage.ru_stime


def redraw_cost(frames: int = 2000) -> float:
    """Seconds per redraw of a busy table (120 columns, errors, 3 slowest URLs), colours on."""
    stats, gauge = Stats(total=10_000), Gauge()
    stats.done = 4321
    stats.by_class.update({"2xx": 4000, "3xx": 21, "4xx": 200, "5xx": 50, "errors": 50})
    stats.errors.update({"timeout": 30, "reset": 12, "connect": 8})
    for ms in range(1, 2000):
        stats.latency.add(float(ms))
    gauge.bind(lambda: (50, 200))
    for i in range(50):
        gauge.start(object(), f"http://127.0.0.1:8080/ok?size=1024&n={i}")
    view = ProgressView(stats, gauge, concurrency=50)
    with open(os.devnull, "w") as devnull:
        console = Console(
            file=devnull, width=120, height=40, force_terminal=True, color_system="truecolor"
        )
        # What Rich's refresh thread does 4 times a second: lay out, render, move the cursor
        # back over the previous frame, write.
        live = Live(view, console=console, auto_refresh=False, transient=True)
        live.start()
        started = time.process_time()
        for frame in range(frames):
            stats.latency.add(float(frame % 2000))  # as in a run: new samples every frame
            live.refresh()
        spent = time.process_time() - started
        live.stop()
    return spent / frames


def gauge_cost() -> tuple[float, float]:
    """Seconds per attempt: the hook's test with no gauge, and start+end with one."""
    number = 200_000
    off = timeit.timeit("if g is not None: pass", setup="g = None", number=number) / number
    gauge, key = Gauge(), object()
    on = (
        timeit.timeit(
            "g.start(k, 'http://a.test/'); g.end(k)", globals={"g": gauge, "k": key}, number=number
        )
        / number
    )
    return off, on


@contextlib.contextmanager
def _server(kind: str) -> Iterator[Callable[[int], str]]:
    """A URL maker for 1 KB answers: nginx (bench/run.py's, fast) or the loopback server."""
    if kind == "nginx":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from run import Nginx

        with Nginx(ports=1) as nginx:
            yield lambda i: nginx.url("/1k", i)
    else:
        with LoopbackServer() as server:
            yield lambda i: f"{server.url('/ok')}?n={i}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--server",
        choices=["nginx", "loopback"],
        default="nginx"
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")
        else "loopback",
        help="what serves the URLs (nginx when installed: a faster run, a stricter ratio)",
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AFETCH_")}
    for name in ("NO_COLOR", "TTY_COMPATIBLE", "FORCE_COLOR"):
        base_env.pop(name, None)
    cpu: dict[str, list[float]] = {mode: [] for mode in args.modes}
    wall: dict[str, list[float]] = {mode: [] for mode in args.modes}
    with _server(args.server) as url, tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text("".join(f"{url(i)}\n" for i in range(args.urls)))
        for round_no in range(args.rounds):
            for mode in args.modes:
                flags, env = MODES[mode]
                argv = [sys.executable, "-m", "afetch", str(urls), "-c", "50", "-q", *flags]
                seconds, cpu_seconds = run_once(argv, {**base_env, **env})
                wall[mode].append(seconds)
                cpu[mode].append(cpu_seconds)
                print(
                    f"  round {round_no + 1}/{args.rounds} {mode}: {seconds:.2f} s "
                    f"(cpu {cpu_seconds:.2f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    base = statistics.median(cpu[args.modes[0]])
    print(
        f"\n{args.urls:,} URLs × 1 KB from {args.server}, -c 50, {args.rounds} rounds; "
        "CPU = user + system of afetch\n"
    )
    # Other load only ever adds CPU time: the fastest run of each mode is its steadiest figure.
    least = min(cpu[args.modes[0]])
    print("| mode | median wall s | median CPU s | CPU × off | min CPU s | min × off |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in args.modes:
        median_cpu = statistics.median(cpu[mode])
        print(
            f"| {mode} | {statistics.median(wall[mode]):.2f} | {median_cpu:.2f} "
            f"| {median_cpu / base:.3f}× | {min(cpu[mode]):.2f} | {min(cpu[mode]) / least:.3f}× |"
        )
    frame = redraw_cost()
    print(
        f"\none redraw (120 columns, colours): {frame * 1e6:,.0f} µs of CPU; at 4 redraws/s "
        f"{frame * 4 * 100:.2f}% of one core"
    )
    off, on = gauge_cost()
    print(f"gauge hook per attempt: {off * 1e9:.0f} ns without a gauge, {on * 1e9:.0f} ns with one")


if __name__ == "__main__":
    main()
