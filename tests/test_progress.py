"""The progress display: the live table at every width, plain lines for logs, and the gauge."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

import afetch
from afetch._loopback import LoopbackServer
from afetch._stats import Stats
from afetch.output.terminal import PlainProgress, ProgressDisplay, ProgressView, progress_display
from afetch.schedule.gauge import Gauge
from tests.cli_run import afetch_cli, cli_env, jsonl

WIDTHS = (60, 80, 120, 200)
# CSI (colours, cursor moves, erase), OSC, and two-byte escapes: what a terminal does not print.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_PLAIN_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    r"afetch: progress: \d+/(\d+|\?) (\d+|\?)% [\d.]+/s 2xx \d+ 3xx \d+ 4xx \d+ 5xx \d+ "
    r"errors \d+ in_flight \d+ waiting \d+ elapsed [\d:]+ eta ([\d:]+|\?)$"
)
ALL_ERRORS = tuple(afetch.ERROR_TYPES)


def visible_lines(raw: str) -> list[str]:
    """What a terminal shows, line by line: escape codes removed, split on CR and LF."""
    return re.split(r"\r\n|\n|\r", _ANSI.sub("", raw))


# -- the table at fixed widths -------------------------------------------------------------------


def _stats(scenario: str) -> tuple[Stats, Gauge, int]:
    """Stats and a gauge as a run would leave them: realistic, long or extreme values."""
    stats = Stats(total=None if scenario == "start" else 5000)
    gauge = Gauge()
    now = time.monotonic()
    if scenario == "start":
        gauge.bind(lambda: (0, 0))
        return stats, gauge, 10
    if scenario == "realistic":
        stats.done, concurrency, running, waiting = 1200, 50, 50, 12
        stats.by_class.update({"2xx": 1100, "4xx": 50, "5xx": 10, "errors": 40})
        stats.errors.update({"timeout": 25, "reset": 10, "connect": 5})
        urls = [f"https://example.org/page/{i}" for i in range(50)]
        stats.started = now - 4
    elif scenario == "long":
        stats.done, concurrency, running, waiting = 4321, 200, 200, 800
        stats.by_class.update({"2xx": 3000, "3xx": 300, "4xx": 500, "5xx": 321, "errors": 200})
        stats.errors.update({name: 20 + i for i, name in enumerate(ALL_ERRORS)})
        urls = [
            f"https://a-very-long-host-name.example.com/{'segment/' * 40}{i}?q={'z' * 300}"
            for i in range(200)
        ]
        stats.started = now - 3 * 3600
    else:  # extreme
        huge = 123_456_789_012
        stats.total, stats.done, concurrency, running, waiting = (
            huge * 10,
            huge * 5,
            100_000,
            100_000,
            400_000,
        )
        stats.by_class.update({name: huge for name in ("2xx", "3xx", "4xx", "5xx", "errors")})
        stats.errors.update({name: huge - i for i, name in enumerate(ALL_ERRORS)})
        urls = [
            # wide characters, and control characters a hostile list could carry
            f"http://例え.テスト/{'長い' * 200}\x1b[2J\x07{i}"
            if i % 2
            else f"http://x/{'y' * 5000}"
            for i in range(100)
        ]
        stats.started = now - 999 * 3600
    for ms in (3.0, 12.0, 80.0, 450.0, 2500.0, 61_000.0):
        stats.latency.add(ms)
    gauge.bind(lambda: (running, waiting))
    for i, url in enumerate(urls):
        gauge.start(object(), url, now=now - 1000 + i)
    return stats, gauge, concurrency


def render(view: ProgressView, *, width: int, height: int = 40, **console: object) -> str:
    out = io.StringIO()
    Console(
        width=width,
        height=height,
        file=out,
        force_terminal=True,
        color_system="truecolor",
        **console,
    ).print(view)
    return out.getvalue()


@pytest.mark.parametrize("scenario", ["start", "realistic", "long", "extreme"])
@pytest.mark.parametrize("width", [*WIDTHS, 40])
def test_every_row_is_one_line_within_the_width(scenario: str, width: int) -> None:
    stats, gauge, concurrency = _stats(scenario)
    raw = render(ProgressView(stats, gauge, concurrency=concurrency), width=width)
    lines = raw.removesuffix("\n").split("\n")
    # headline, classes, requests, latency, errors (when there are any), 3 slowest (when running)
    expected = 4 + bool(stats.errors) + min(3, gauge.in_flight)
    assert len(lines) == expected, raw  # a wrapped cell would add a line
    for line in lines:
        assert cell_len(_ANSI.sub("", line)) <= width, line
    assert "\x1b[2J" not in raw
    assert "\x07" not in raw


@pytest.mark.parametrize("width", WIDTHS)
def test_what_matters_survives_narrow_widths(width: int) -> None:
    stats, gauge, concurrency = _stats("realistic")
    text = _ANSI.sub("", render(ProgressView(stats, gauge, concurrency=concurrency), width=width))
    for needle in ("1,200/5,000", "24%", "eta 0:12", "errors 40", "in flight 50/50", "waiting 12"):
        assert needle in text
    assert "p99" in text
    assert "timeout 25" in text
    assert "slowest" in text
    if width >= 80:
        assert "elapsed 0:04" in text


def test_huge_counts_shrink_before_they_are_cut() -> None:
    stats, gauge, concurrency = _stats("extreme")
    text = _ANSI.sub("", render(ProgressView(stats, gauge, concurrency=concurrency), width=60))
    assert "errors 123G" in text  # the last class is still there, in short form
    assert "in flight 100,000/100,000  waiting 400,000" in text
    assert "+" in text
    assert "more" in text


def test_a_short_terminal_gets_fewer_slowest_rows() -> None:
    stats, gauge, concurrency = _stats("realistic")
    raw = render(ProgressView(stats, gauge, concurrency=concurrency), width=80, height=7)
    assert raw.count("\n") == 6  # five rows and one slowest URL: never taller than the screen


def test_url_passwords_are_masked() -> None:
    stats, gauge = Stats(), Gauge()
    gauge.bind(lambda: (1, 0))
    gauge.start(object(), "https://ann:s3cr3t-pw@example.org/private", now=time.monotonic() - 5)
    text = _ANSI.sub("", render(ProgressView(stats, gauge, concurrency=1), width=120))
    assert "https://ann:***@example.org/private" in text
    assert "s3cr3t" not in text


def _colour_codes(raw: str) -> list[str]:
    params = re.findall(r"\x1b\[([0-9;]*)m", raw)
    return [
        p
        for p in params
        for code in p.split(";")
        if code and (30 <= int(code) <= 49 or 90 <= int(code) <= 107)
    ]


def test_no_color_is_respected() -> None:
    stats, gauge, concurrency = _stats("realistic")
    view = ProgressView(stats, gauge, concurrency=concurrency)
    assert _colour_codes(render(view, width=80))  # the check below can fail
    assert not _colour_codes(render(view, width=80, _environ={"NO_COLOR": "1"}))


def test_the_live_table_only_where_it_can_redraw() -> None:
    stats, gauge = Stats(), Gauge()

    def chosen(**console: object) -> object:
        return progress_display(
            stats, gauge, Console(file=io.StringIO(), **console), concurrency=1, interval=1
        )

    assert isinstance(chosen(force_terminal=True, _environ={"TERM": "xterm"}), ProgressDisplay)
    assert isinstance(chosen(force_terminal=True, _environ={"TERM": "dumb"}), PlainProgress)
    assert isinstance(chosen(force_terminal=False), PlainProgress)


def test_plain_progress_writes_lines_from_its_thread() -> None:
    stats, gauge = Stats(total=10), Gauge()
    out = io.StringIO()
    with PlainProgress(stats, gauge, interval=0.02, file=out):
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert all(_PLAIN_LINE.match(line) for line in lines), lines


# -- the gauge: in flight never exceeds -c -------------------------------------------------------


class _CheckedGauge(Gauge):
    def __init__(self, concurrency: int) -> None:
        super().__init__()
        self.concurrency = concurrency
        self.samples: list[tuple[int, int]] = []
        self.firsts: dict[object, list[float]] = {}  # URL -> the first-attempt time of each attempt

    def start(
        self, key: object, url: str, *, now: float | None = None, first: float | None = None
    ) -> float:
        first = super().start(key, url, now=now, first=first)
        self.samples.append((self.in_flight, len(self._started)))
        self.firsts.setdefault(key, []).append(first)
        return first


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_in_flight_never_exceeds_concurrency(server: LoopbackServer, closed_port: int) -> None:
    concurrency = 3
    hosts = [f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"]
    urls = [f"{host}/sleep/40?{i}" for i in range(6) for host in hosts]
    urls += [f"{host}/flaky/{uuid.uuid4().hex[:12]}/2" for host in hosts for _ in range(3)]
    urls += [f"http://127.0.0.1:{closed_port}/refused/{i}" for i in range(3)]
    gauge = _CheckedGauge(concurrency)
    seen: list[tuple[int, int, list[float]]] = []
    stop = threading.Event()

    def sample() -> None:  # as the display does, from another thread
        while not stop.is_set():
            ages = [age for _, age in gauge.oldest(5)]
            seen.append((gauge.in_flight, gauge.waiting, ages))
            time.sleep(0.001)

    async def main() -> list[afetch.Record]:
        return [
            record
            async for record in afetch.fetch(
                urls, concurrency=concurrency, per_host=1, retries=2, backoff=0.01, gauge=gauge
            )
        ]

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        records = asyncio.run(main())
    finally:
        stop.set()
        sampler.join()
    assert len(records) == len(urls)
    assert any(r.attempts > 1 for r in records)  # retries really happened
    assert max(in_flight for in_flight, _ in gauge.samples) <= concurrency
    assert all(in_flight == running for in_flight, running in gauge.samples)
    assert max(in_flight for in_flight, _, _ in seen) <= concurrency
    assert max(in_flight for in_flight, _ in gauge.samples) >= 2  # hosts really overlapped
    assert all(ages == sorted(ages, reverse=True) for _, _, ages in seen)  # oldest first
    assert max(waiting for _, waiting, _ in seen) >= 1  # URLs did park behind a busy host
    assert (gauge.in_flight, gauge.waiting, gauge.oldest(5)) == (0, 0, [])
    retried = [firsts for firsts in gauge.firsts.values() if len(firsts) > 1]
    assert retried
    assert all(len(set(firsts)) == 1 for firsts in retried)  # ages count from the first attempt


# -- the command line ------------------------------------------------------------------------------


def _slow_list(tmp_path: Path, server: LoopbackServer, closed_port: int) -> str:
    pad = "p" * 180  # long URLs: the slowest rows must cut them, not wrap them
    urls = [server.url(f"/sleep/700?{pad}{i}") for i in range(12)]
    urls += [server.url("/status/404"), server.url("/status/500"), "not a url"]
    urls += [f"http://127.0.0.1:{closed_port}/"]
    path = tmp_path / "urls.txt"
    path.write_text("".join(f"{url}\n" for url in urls))
    return str(path)


def _pty_output(
    argv: list[str],
    *,
    env: dict[str, str],
    cols: int,
    rows: int = 24,
    stdout_too: bool = False,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """Run ``argv`` with stderr (and with ``stdout_too`` stdout as well) on a pseudo-terminal
    ``cols`` × ``rows``; (exit code, the bytes it wrote there). With ``stdout_too`` the terminal
    keeps "\n" as it is (no ONLCR), so an emulator is fed exactly what afetch wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    if stdout_too:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    chunks: list[bytes] = []

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO once the child has gone
            while chunk := os.read(master, 65536):
                chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        stdout = slave if stdout_too else subprocess.DEVNULL
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=slave, env=env
        )
        os.close(slave)
        code = process.wait(timeout=timeout)
    finally:
        reader.join(timeout=10)
        os.close(master)
    return code, b"".join(chunks)


def _run_on_pty(argv: list[str], *, env: dict[str, str], cols: int) -> tuple[int, str]:
    """Run ``argv`` with stderr on a pseudo-terminal ``cols`` wide; (exit code, what it drew)."""
    code, raw = _pty_output(argv, env=env, cols=cols)
    return code, raw.decode("utf-8", "replace")


def _pty_env(**extra: str) -> dict[str, str]:
    env = cli_env({"TERM": "xterm-256color", **extra})
    for name in ("COLUMNS", "LINES", "NO_COLOR"):  # the pty's own size and colours, please
        env.pop(name, None)
    return {**env, **extra}


def test_live_table_on_a_terminal_fits_80_columns(
    tmp_path: Path, server: LoopbackServer, closed_port: int
) -> None:
    argv = [sys.executable, "-m", "afetch", _slow_list(tmp_path, server, closed_port), "-c", "4"]
    code, drawn = _run_on_pty([*argv, "--retries", "0"], env=_pty_env(), cols=80)
    assert code == 1
    assert "\x1b[" in drawn  # it really drew with escape codes
    lines = visible_lines(drawn)
    assert any("in flight 4/4" in line for line in lines)  # the table, mid-run
    slowest = [line for line in lines if line.startswith("slowest") and "/sleep/700?" in line]
    assert slowest
    assert all(line.rstrip().endswith("…") for line in slowest)  # cut, not wrapped onto a next line
    assert any("afetch summary" in line for line in lines)
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert not too_wide, too_wide


def test_dumb_terminal_gets_plain_lines(
    tmp_path: Path, server: LoopbackServer, closed_port: int
) -> None:
    argv = [sys.executable, "-m", "afetch", _slow_list(tmp_path, server, closed_port), "-c", "4"]
    argv += ["--retries", "0", "--progress-interval", "0.3"]
    code, drawn = _run_on_pty(argv, env=_pty_env(TERM="dumb"), cols=80)
    assert code == 1
    progress = [line for line in drawn.splitlines() if " afetch: progress:" in line]
    assert len(progress) >= 2, drawn
    assert all(_PLAIN_LINE.match(line.rstrip("\r")) for line in progress), progress


def test_github_actions_never_gets_the_live_table(
    tmp_path: Path, server: LoopbackServer, closed_port: int
) -> None:
    """Its log is no terminal, even when a step runs afetch under a pty wrapper."""
    argv = [sys.executable, "-m", "afetch", _slow_list(tmp_path, server, closed_port), "-c", "4"]
    argv += ["--retries", "0", "--progress-interval", "0.3"]
    code, drawn = _run_on_pty(argv, env=_pty_env(GITHUB_ACTIONS="true"), cols=80)
    assert code == 1
    assert "\x1b[" not in drawn
    assert [line for line in drawn.splitlines() if " afetch: progress:" in line], drawn
    assert "::error title=afetch" in drawn


@pytest.mark.parametrize("how", ["flag", "env"])
def test_plain_progress_to_a_log_file(
    tmp_path: Path, server: LoopbackServer, closed_port: int, how: str
) -> None:
    urls = _slow_list(tmp_path, server, closed_port)
    interval = ["--progress-interval", "0.2"] if how == "flag" else []
    env = {"AFETCH_PROGRESS_INTERVAL": "0.2"} if how == "env" else {}
    result = afetch_cli(urls, "-c", "4", "--retries", "0", "--progress", *interval, env=env)
    assert result.returncode == 1
    assert len(jsonl(result.stdout)) == 16  # stdout still carries records only
    assert "\x1b" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if " afetch: progress:" in line]
    assert len(progress) >= 4, result.stderr  # a ~2 s run, a line every 0.2 s
    assert all(_PLAIN_LINE.match(line) for line in progress), progress
    assert "/16 " in progress[-1]  # the total, counted in the background
    done = [int(line.split()[3].split("/")[0]) for line in progress]
    assert done == sorted(done)
    assert done[-1] >= 4
    assert "afetch: summary" in result.stderr


def test_no_plain_lines_without_progress(tmp_path: Path, server: LoopbackServer) -> None:
    path = tmp_path / "urls.txt"
    path.write_text(server.url("/sleep/500") + "\n")
    result = afetch_cli(str(path), "--progress-interval", "0.1")  # stderr is a pipe: off
    assert "afetch: progress:" not in result.stderr


def test_a_bad_interval_is_a_usage_error() -> None:
    result = afetch_cli("-", "--progress-interval", "0", stdin="")
    assert result.returncode == 2
    assert result.stderr.startswith("afetch: error:")
    assert "--progress-interval" in result.stderr


def test_stats_count_each_record_by_its_class_and_ok() -> None:
    from collections import Counter

    from afetch._record import FetchError, Record
    from afetch._stats import status_class

    statuses = (None, 0, 100, 200, 204, 301, 399, 400, 404, 500, 503, 600, 999)
    errors = (None, FetchError("dns", "no such host"), FetchError("timeout", "slow"))
    records = [
        Record(url="u", status=s, error=e, elapsed_ms=1.5, bytes=3)
        for s in statuses
        for e in errors
    ]
    classes = [status_class(Record(url="u", status=s)) for s in (0, 100, 299, 301, 404, 503, 999)]
    assert classes == ["2xx", "2xx", "2xx", "3xx", "4xx", "5xx", "5xx"]
    stats = Stats()
    for record in records:
        stats.add(record)
    assert stats.by_class == Counter(status_class(r) for r in records)
    assert stats.ok == sum(r.ok for r in records)
    assert stats.errors == Counter({"dns": len(statuses), "timeout": len(statuses)})
    assert stats.latency.count == len(records)  # failures have a latency too
    assert (stats.done, stats.bytes) == (len(records), 3 * len(records))
    batched = Stats()  # the writer thread counts a batch at a time: the same totals
    batched.add_many(records[:10])
    batched.add_many(records[10:])
    assert (batched.by_class, batched.errors, batched.ok) == (
        stats.by_class,
        stats.errors,
        stats.ok,
    )
    assert (batched.done, batched.bytes, batched.latency.count) == (
        stats.done,
        stats.bytes,
        stats.latency.count,
    )


# -- one terminal, two streams -------------------------------------------------------------------


def _screen_and_scrollback(raw: bytes, *, cols: int, rows: int, cut: int) -> list[list[str]]:
    """Every line a person can scroll back to, then the screen, as a terminal emulator shows
    them, after ``raw[:cut]`` and after all of ``raw`` (one emulator fed on: each byte once); a
    line that wrapped (a row filled to the last column) is joined to the next."""
    import pyte

    screen = pyte.HistoryScreen(cols, rows, history=100_000, ratio=0.001)
    stream = pyte.ByteStream(screen)

    def text(row: dict[int, pyte.screens.Char]) -> str:
        return "".join(row[x].data for x in range(cols))

    def shown() -> list[str]:
        rows_seen = [text(row) for row in screen.history.top] + [
            text(screen.buffer[y]) for y in range(rows)
        ]
        lines: list[str] = []
        joining = False
        for row in rows_seen:
            if joining:
                lines[-1] += row
            else:
                lines.append(row)
            joining = len(row.rstrip()) == cols
        return [line.rstrip() for line in lines]

    seen: list[list[str]] = []
    for part in (raw[:cut], raw[cut:]):
        stream.feed(part.replace(b"\n", b"\r\n"))  # what the pty's ONLCR (off) would have done
        seen.append(shown())
    return seen


def test_records_and_the_live_table_share_one_terminal() -> None:
    """`afetch --demo` with stdout and stderr on one terminal: every record scrolls up whole
    and parseable above the table, and no frame of the table is left in the scrollback."""
    cols, rows = 100, 30
    # No retries: the demo's hanging URLs would time out three times over (a run of 6 s, not
    # 2.5 s, and more frames to emulate), and retries are not what shares the terminal.
    demo = ["--demo", "-c", "20", "--timeout", "1", "--retries", "0"]
    argv = [sys.executable, "-m", "afetch", *demo]
    code, raw = _pty_output(
        argv, env=_pty_env(), cols=cols, rows=rows, stdout_too=True, timeout=120
    )
    assert code == 1
    assert b"\x1b[" in raw  # the live table really was drawn
    assert b"in flight" in raw
    # Just before the table goes (Rich shows the cursor again as it stops), and at the end.
    before_end, lines = _screen_and_scrollback(
        raw, cols=cols, rows=rows, cut=raw.rindex(b"\x1b[?25h")
    )
    records = [line for line in lines if line.startswith("{")]
    parsed = [json.loads(line) for line in records]  # each one whole: a cut one fails here
    assert len(parsed) == 300
    stray = [line for line in lines if "{" in line and not line.startswith("{")]
    assert not stray, stray  # no record glued to a line of the table
    frames = [line for line in lines if line.startswith(("classes", "requests", "slowest"))]
    assert not frames, frames  # the table left no frame behind
    last_record = max(i for i, line in enumerate(lines) if line.startswith("{"))
    summary = next(i for i, line in enumerate(lines) if "afetch summary" in line)
    assert summary > last_record  # the summary comes after every record, at the bottom
    # Just before the table goes: its last frame at the bottom, every record above it.
    shown = [line for line in before_end if line]
    headline = max(i for i, line in enumerate(shown) if " eta " in line)
    assert "300/300" in shown[headline]
    assert [line.split()[0] for line in shown[headline + 1 :]][:3] == [
        "classes",
        "requests",
        "latency",
    ]
    assert all(line.startswith("{") for line in shown[headline - 300 : headline])
    assert sum(line.startswith("{") for line in shown) == 300


# -- the summary ---------------------------------------------------------------------------------


def test_summary_latency_counts_failures_and_fits_60_columns() -> None:
    from afetch._record import FetchError, Record
    from afetch.output.terminal import summary_view

    stats = Stats(total=5000)
    stats.add_many([Record(url="u", status=200, elapsed_ms=1413.0)] * 4995)
    stats.add_many([Record(url="u", error=FetchError("timeout", "slow"), elapsed_ms=2005.0)] * 5)
    from afetch.output.plain import interrupted_note

    note = interrupted_note(stats, total=9000, state="state.txt")
    busiest = [(f"https://{'h' * 60}.example:8443", 1234, 8)]
    out = io.StringIO()
    Console(file=out, width=60, _environ={}).print(
        summary_view(stats, busiest=busiest, notes=[note])
    )
    lines = out.getvalue().splitlines()
    assert all(cell_len(line) <= 60 for line in lines), lines
    assert "--state state.txt --resume)" in out.getvalue()  # the note wraps, read in full
    assert lines[-1].rstrip().endswith("…")  # a long host name is cut
    latency = next(line for line in lines if line.lstrip().startswith("latency"))
    assert latency.rstrip().endswith("max 2.00 s")  # the timed-out URLs are the slowest
    assert lines[lines.index(latency) + 1].lstrip().startswith("rate")  # not wrapped
    assert "5,000 done, 4,995 ok, 5 not ok" in out.getvalue()  # as the table writes numbers
    assert "timeout 5" in out.getvalue()


def test_plain_summary_lines_are_stamped_and_prefixed() -> None:
    from afetch._record import FetchError, Record
    from afetch.output.plain import summary_text

    stats = Stats()
    stats.add_many([Record(url="u", status=200, elapsed_ms=5.0)] * 1200)
    stats.add_many([Record(url="u", error=FetchError(kind, "x")) for kind in ("dns", "reset")])
    lines = summary_text(stats).splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z afetch: ")
    assert all(stamp.match(line) for line in lines), lines
    assert any("1,202 done, 1,200 ok, 2 not ok" in line for line in lines)
    assert any(line.endswith("errors   dns 1  reset 1") for line in lines), lines


def _wait_for_requests(server: LoopbackServer, path: str, count: int, before: int) -> None:
    """Until the server has seen ``count`` more requests for ``path`` than ``before``."""
    deadline = time.monotonic() + 30
    while server.stats.by_path[path] < before + count:
        assert time.monotonic() < deadline, "the run never started its requests"
        time.sleep(0.02)


def test_an_interrupted_run_says_what_was_not_fetched(
    tmp_path: Path, server: LoopbackServer
) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("".join(server.url(f"/sleep/3000?{i}") + "\n" for i in range(40)))
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "afetch", str(path), "-c", "2", "--state", str(state)]
    before = server.stats.by_path["/sleep/3000"]
    process = subprocess.Popen(
        [*argv, "--progress", "--progress-interval", "0.1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        text=True,
    )
    _wait_for_requests(server, "/sleep/3000", 2, before)  # started, two in flight, none done
    process.send_signal(2)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert jsonl(out) == []
    assert f"interrupted: 40 of 40 URLs not fetched (resume with --state {state} --resume)" in err
    assert " done, " in err  # the counts are still there


# -- the ETA counts retries ----------------------------------------------------------------------


def test_eta_counts_the_retries_of_hung_urls(server: LoopbackServer) -> None:
    """98% done at a high rate, the rest hanging and retried: the ETA is what their attempts
    left may take (timeout 0.3 s, two retries), not the 0:00 the rate alone gives."""
    from afetch.output.plain import eta

    tails: list[float] = []

    class Noting(Gauge):
        """The tail as each retry is reported (sampled from a thread, it would depend on when
        the thread got to run)."""

        def retry(
            self, key: object, *, waits: float, attempts: int, now: float | None = None
        ) -> None:
            super().retry(key, waits=waits, attempts=attempts, now=now)
            tails.append(self.tail())

    gauge = Noting(attempt_s=0.3)

    async def main() -> list[afetch.Record]:
        urls = [server.url("/hang"), server.url("/ok")]
        return [
            record
            async for record in afetch.fetch(
                urls, timeout=0.3, retries=2, backoff=0.01, gauge=gauge
            )
        ]

    records = asyncio.run(main())
    assert max(record.attempts for record in records) == 3
    # After the first timeout: two attempts of 0.3 s left, and the short backoffs (0.01 to
    # 0.02 s); after the second, one attempt and one backoff.
    assert len(tails) == 2
    assert 0.6 <= tails[0] < 0.65, tails
    assert 0.29 < tails[1] < 0.35, tails
    assert gauge.tail() == 0.0  # nothing left once every URL is done
    stats = Stats(total=100)
    stats.done, stats.started = 98, time.monotonic() - 1  # 98/s: 0.02 s left by the rate
    gauge.retry("hung", waits=1.0, attempts=2)
    assert eta(stats, gauge) > 1.5


def test_an_interrupted_run_from_stdin_has_no_total(tmp_path: Path, server: LoopbackServer) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("".join(server.url(f"/sleep/3000?{i}") + "\n" for i in range(40)))
    with path.open() as stdin:
        before = server.stats.by_path["/sleep/3000"]
        process = subprocess.Popen(
            [sys.executable, "-m", "afetch", "-", "-c", "2"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            text=True,
        )
    _wait_for_requests(server, "/sleep/3000", 2, before)  # started, two in flight, none done
    process.send_signal(2)
    out, err = process.communicate(timeout=30)
    assert jsonl(out) == []
    assert process.returncode == 130
    note = "interrupted: the URLs after these were not fetched (run with --state FILE to resume)"
    assert note in err


@pytest.mark.posix
def test_an_interrupted_run_from_a_fifo_ends_without_waiting_for_a_writer(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """The interrupted note counts only regular files: opening the FIFO again to count it would
    wait for a writer that has gone, and the run would never end."""
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    before = server.stats.by_path["/sleep/3000"]
    process = subprocess.Popen(
        [sys.executable, "-m", "afetch", str(fifo), "-c", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        text=True,
    )
    with fifo.open("w") as writer:  # opened, written and closed: nobody writes to it again
        writer.write("".join(server.url(f"/sleep/3000?{i}") + "\n" for i in range(40)))
    _wait_for_requests(server, "/sleep/3000", 2, before)  # started, two in flight, none done
    process.send_signal(2)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert jsonl(out) == []
    assert "interrupted: the URLs after these were not fetched" in err
