"""Watching URLs across runs (afetch.watch): --history's change, streak and since, the exit
policy (--fail-on, --fail-after), --accept, --accept-timeouts and --ok-if, through the real CLI
against a loopback server whose answers change between runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afetch._record import Record
from afetch.watch.change import CHANGES, next_row
from afetch.watch.history import History
from afetch.watch.policy import ExitPolicy, PolicyError, parse_accept
from tests.cli_run import afetch_cli, cli_env, jsonl
from tests.helpers import serving


class Answers(ThreadingHTTPServer):
    """Serves ``routes[path] = (status, body[, location])``, changed by the test between runs;
    ``hang`` paths answer only once released."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[Any, ...]] = {}
        self.hits: Counter[str] = Counter()
        self.hang: set[str] = set()
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Answers

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        if self.path in self.server.hang:
            self.server.release.wait(30)
        status, body, *location = self.server.routes.get(self.path, (404, b"none"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location[0])
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Answers]:
    answers = Answers()
    with serving(answers):
        try:
            yield answers
        finally:
            answers.release.set()


def run(urls: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    done = afetch_cli(str(urls), "--retries", "0", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, {r["url"]: r for r in jsonl(done.stdout)}, done.stderr


def test_every_change_value_streak_and_since_over_five_runs(
    server: Answers, tmp_path: Path
) -> None:
    paths = ["/up", "/breaks", "/content", "/moves", "/flaps", "/target"]
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(p) + "\n" for p in paths))
    store = str(tmp_path / "h.db")
    up, down = (200, b"fine"), (500, b"down")
    nights = [
        # /breaks: up, down, down, up, up; /content: its body changes on night 3 (--hash);
        # /moves: redirected elsewhere from night 2; /flaps: up, down, up, down, up.
        {"/breaks": up, "/content": (200, b"v1"), "/moves": up, "/flaps": up},
        {
            "/breaks": down,
            "/content": (200, b"v1"),
            "/moves": (302, b"", "/target"),
            "/flaps": down,
        },
        {"/breaks": down, "/content": (200, b"v2"), "/moves": (302, b"", "/target"), "/flaps": up},
        {"/breaks": up, "/content": (200, b"v2"), "/moves": (302, b"", "/target"), "/flaps": down},
        {"/breaks": up, "/content": (200, b"v2"), "/moves": (302, b"", "/target"), "/flaps": up},
    ]
    expected = {
        "/up": [("new", 1), ("same", 2), ("same", 3), ("same", 4), ("same", 5)],
        "/breaks": [("new", 1), ("broke", 1), ("same", 2), ("recovered", 1), ("same", 2)],
        "/content": [("new", 1), ("same", 2), ("changed", 3), ("same", 4), ("same", 5)],
        "/moves": [("new", 1), ("changed", 2), ("same", 3), ("same", 4), ("same", 5)],
        # Three changes of ok within 8 runs: flapping from night 4 on.
        "/flaps": [("new", 1), ("broke", 1), ("recovered", 1), ("flapping", 1), ("flapping", 1)],
    }
    history: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for night, answers in enumerate(nights):
        server.routes = {"/up": up, "/target": up, **answers}
        code, records, _ = run(urls, "--history", store, "--hash", "-q")
        assert len(records) == len(paths)
        for path in paths:
            history[path].append(records[server.url(path)])
        # Exit 1 whenever a URL is not ok (the default policy), 0 otherwise.
        assert code == (1 if any(a[0] >= 400 for a in answers.values()) else 0), night
    for path, wanted in expected.items():
        records = history[path]
        assert [(r["change"], r["streak"]) for r in records] == wanted, path
        for night, record in enumerate(records):
            # since: the started_at of the first run of the current streak.
            first = records[night - record["streak"] + 1]
            assert record["since"] == first["started_at"], (path, night)
            assert list(record)[-3:] == ["change", "streak", "since"]


def test_history_keys_appear_only_with_history(server: Answers, tmp_path: Path) -> None:
    server.routes = {"/a": (200, b"a")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/a") + "\n")
    _, records, _ = run(urls, "-q")
    assert "change" not in records[server.url("/a")]
    done = afetch_cli(str(urls), "--history", str(tmp_path / "h.db"), "--format", "csv", "-q")
    header, row = done.stdout.splitlines()
    assert header.endswith(",started_at,change,streak,since")
    assert row.split(",")[-3:-1] == ["new", "1"]


def test_fail_on_and_fail_after_follow_the_streak(server: Answers, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/x") + "\n" + server.url("/ok") + "\n")
    server.routes = {"/x": (200, b"up"), "/ok": (200, b"up")}
    stores = {name: str(tmp_path / f"{name}.db") for name in ("any", "new", "after", "new3")}
    policies = {
        "any": ["--fail-on", "any"],
        "new": ["--fail-on", "new"],
        "after": ["--fail-after", "3"],
        "new3": ["--fail-on", "new", "--fail-after", "3"],
    }
    codes: dict[str, list[int]] = {name: [] for name in stores}
    # /x: up, then down for four nights. Each night the four policies' runs side by side (one
    # store each), as four cron jobs would be: 5 rounds, not 20 runs one after another.
    for night in range(5):
        if night == 1:
            server.routes["/x"] = (503, b"down")
        command = [sys.executable, "-m", "afetch", str(urls), "--retries", "0", "-q"]
        runs = {
            name: subprocess.Popen(
                [*command, "--history", stores[name], *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=cli_env(),
            )
            for name, args in policies.items()
        }
        for name, process in runs.items():
            _, err = process.communicate(timeout=60)
            assert b"Traceback" not in err, err
            codes[name].append(process.returncode)
    assert codes["any"] == [0, 1, 1, 1, 1]
    assert codes["new"] == [0, 1, 0, 0, 0]  # woken once, when it broke
    assert codes["after"] == [0, 0, 0, 1, 1]  # the third night down in a row
    assert codes["new3"] == [0, 0, 0, 1, 0]
    code, records, _ = run(urls, "--history", stores["any"], "-q", "--fail-on", "none")
    assert (code, records[server.url("/x")]["ok"]) == (0, False)


def test_fail_on_none_without_history_and_policies_that_need_it(
    server: Answers, tmp_path: Path
) -> None:
    server.routes = {"/x": (404, b"gone")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/x") + "\n")
    assert run(urls, "-q", "--fail-on", "none")[0] == 0
    assert run(urls, "-q")[0] == 1
    for args in (["--fail-on", "new"], ["--fail-after", "2"]):
        done = afetch_cli(str(urls), *args)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"afetch: error: {' '.join(args[:1] if args[1] == '2' else args)}: needs --history "
            "FILE (see afetch --help)"
        ]
    assert server.hits["/x"] == 2  # the usage errors fetched nothing


def test_accept_statuses_and_timeouts_decide_ok_after_retries(
    server: Answers, tmp_path: Path
) -> None:
    server.routes = {"/limited": (429, b"slow down"), "/moved": (301, b"", "/gone")}
    server.routes["/slow"] = (200, b"late")
    server.hang = {"/slow"}
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(p) + "\n" for p in ("/limited", "/moved", "/slow")))
    args = ["--no-follow", "--timeout", "0.5", "-q", "--backoff", "0"]
    code, records, _ = run(urls, *args)
    assert code == 1
    assert [records[server.url(p)]["ok"] for p in ("/limited", "/moved", "/slow")] == [
        False,
        True,
        False,
    ]
    code, records, _ = run(urls, *args, "--accept", "200-299,429", "--accept-timeouts")
    limited, moved, slow = (records[server.url(p)] for p in ("/limited", "/moved", "/slow"))
    assert (limited["ok"], moved["ok"], slow["ok"]) == (True, False, True)
    assert slow["error"]["type"] == "timeout"  # the record still says what happened
    assert code == 1  # the 301, outside --accept
    # Retries are the retry policy's: an accepted 429 is still retried.
    hits = server.hits["/limited"]
    done = afetch_cli(str(urls), *args, "--retries", "1", "--accept", "429")
    assert done.returncode == 1
    assert server.hits["/limited"] == hits + 2
    bad = afetch_cli(str(urls), "--accept", "200..299")
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1


def test_ok_if_decides_ok_before_the_summary_and_the_journal(
    server: Answers, tmp_path: Path
) -> None:
    server.routes = {"/a": (200, b"a" * 10), "/b": (200, b"b" * 100), "/gone": (404, b"")}
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(p) + "\n" for p in ("/a", "/b", "/gone")))
    state = tmp_path / "run.state"
    # ok: only a body over 50 bytes, so the 200 of /a is not ok (and the 404 not either).
    args = ["--retries", "0", "--state", str(state), "--ok-if", ".bytes > 50"]
    done = afetch_cli(str(urls), *args)
    records = {r["url"]: r for r in jsonl(done.stdout)}
    assert [records[server.url(p)]["ok"] for p in ("/a", "/b", "/gone")] == [False, True, False]
    assert done.returncode == 1
    assert "1 ok, 2 not ok" in done.stderr  # the summary counts the verdict
    journal = state.read_text().splitlines()
    assert f" ! {server.url('/a')}" in journal  # and so does the journal
    assert server.url("/b") in journal


def test_a_bad_ok_if_is_a_usage_error_before_anything_is_fetched(
    server: Answers, tmp_path: Path
) -> None:
    server.routes = {"/a": (200, b"a")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/a") + "\n")
    done = afetch_cli(str(urls), "--ok-if", ".status <")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("afetch: error: --ok-if: not a jq expression: jq: error: syntax")
    assert server.hits["/a"] == 0


def test_an_ok_if_that_loops_forever_is_bounded(server: Answers, tmp_path: Path) -> None:
    server.routes = {f"/{i}": (200, b"x") for i in range(6)}
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/{i}") + "\n" for i in range(6)))
    started = time.monotonic()
    # Loops on /0 and /1 only: each overrun costs that record (and a new worker), no more.
    expression = 'if (.url | endswith("/0") or endswith("/1")) then last(repeat(1)) else .ok end'
    done = afetch_cli(str(urls), "--retries", "0", "--ok-if", expression, timeout=60)
    records = {r["url"]: r for r in jsonl(done.stdout)}
    assert len(records) == 6
    assert [records[server.url(f"/{i}")]["ok"] for i in range(6)] == [False, False] + [True] * 4
    assert "a record took more than 1 s of CPU" in done.stderr
    assert done.returncode == 1
    assert time.monotonic() - started < 30  # 1 s of CPU per overrun, generously


def test_an_ok_if_that_always_overruns_is_given_up_after_three(
    server: Answers, tmp_path: Path
) -> None:
    server.routes = {f"/{i}": (200, b"x") for i in range(8)}
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/{i}") + "\n" for i in range(8)))
    started = time.monotonic()
    done = afetch_cli(str(urls), "--retries", "0", "--ok-if", "last(repeat(1))", timeout=60)
    assert [r["ok"] for r in jsonl(done.stdout)] == [False] * 8
    assert "gave up after 3 records overran; the rest not ok" in done.stderr
    assert done.returncode == 1
    assert time.monotonic() - started < 40  # three overruns of 1 s of CPU, not eight


def test_a_jq_error_makes_the_record_not_ok_with_one_warning(
    server: Answers, tmp_path: Path
) -> None:
    server.routes = {"/a": (200, b"a"), "/b": (200, b"b")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/a") + "\n" + server.url("/b") + "\n")
    code, records, stderr = run(urls, "--ok-if", '.url | test("/a$") or error("nope")')
    assert [records[server.url(p)]["ok"] for p in ("/a", "/b")] == [True, False]
    assert code == 1
    assert stderr.count("jq error") == 1
    assert "nope" in stderr


def test_a_resumed_run_is_the_same_run(server: Answers, tmp_path: Path) -> None:
    """Night 2 is interrupted (SIGTERM) while /late hangs; --resume finishes it: /late is
    judged as night 2 (streak 2, not 3), and /a, done before the stop, is not judged again."""
    server.routes = {"/a": (200, b"a"), "/late": (200, b"late")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/a") + "\n" + server.url("/late") + "\n")
    store, state = str(tmp_path / "h.db"), str(tmp_path / "run.state")
    args = ["--history", store, "--state", state, "--resume", "-q"]
    run(urls, *args)  # night 1: both new
    server.hang = {"/late"}
    night2 = subprocess.Popen(
        [sys.executable, "-m", "afetch", str(urls), "--retries", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    deadline = time.monotonic() + 20
    while server.hits["/late"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # /a's record written and journaled
    night2.send_signal(signal.SIGTERM)
    out, _ = night2.communicate(timeout=20)
    assert night2.returncode == 143
    [a] = jsonl(out)
    assert (a["url"], a["change"], a["streak"]) == (server.url("/a"), "same", 2)
    server.hang = set()
    code, records, _ = run(urls, *args)  # resumed: only /late
    assert code == 0
    assert list(records) == [server.url("/late")]
    assert (records[server.url("/late")]["change"], records[server.url("/late")]["streak"]) == (
        "same",
        2,
    )
    code, records, _ = run(urls, *args)  # night 3: a new run
    assert [r["streak"] for r in records.values()] == [3, 3]
    assert code == 0


def test_a_url_twice_in_one_run_is_judged_once(server: Answers, tmp_path: Path) -> None:
    server.routes = {"/a": (200, b"a")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/a") + "\n")
    store = str(tmp_path / "h.db")
    run(urls, "--history", store)
    urls.write_text(server.url("/a") + "\n" * 1 + server.url("/a") + "\n")
    done = afetch_cli(str(urls), "--history", store, "-q", "-c", "1")
    assert [(r["change"], r["streak"]) for r in jsonl(done.stdout)] == [("same", 2)] * 2


def test_one_store_per_shard_and_one_run_per_store(server: Answers, tmp_path: Path) -> None:
    server.routes = {"/a": (200, b"a")}
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/a") + "\n")
    store = str(tmp_path / "h.db")
    assert run(urls, "--history", store, "--shard", "0/2", "-q")[0] in (0, 1)
    done = afetch_cli(str(urls), "--history", store, "--shard", "1/2")
    assert done.returncode == 2
    assert "one --history file per shard" in done.stderr
    held = History(store, resume=False, shard="0/2")
    try:
        done = afetch_cli(str(urls), "--history", store, "--shard", "0/2")
    finally:
        held.close()
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"afetch: error: {store} is in use by another afetch run (--history takes a lock "
        "until that run ends)"
    ]


# -- the parts, without the CLI ---------------------------------------------------------------


def _outcomes(oks: list[bool]) -> list[str]:
    row = None
    changes = []
    for run_number, ok in enumerate(oks, 1):
        row = next_row(
            row,
            run=run_number,
            ok=ok,
            status=200 if ok else 500,
            final=None,
            body=None,
            started_at=str(run_number),
        )
        changes.append(CHANGES[row[6]])
    return changes


def test_flapping_needs_three_changes_within_eight_runs() -> None:
    assert _outcomes([True, False, True, False]) == ["new", "broke", "recovered", "flapping"]
    # Two changes only: not flapping; and flapping ends once the window is calm.
    assert _outcomes([True, False, False, False, True]) == [
        "new",
        "broke",
        "same",
        "same",
        "recovered",
    ]
    calm = _outcomes([True, False, True, False] + [False] * 8)
    # Flapping while the three changes are within the last 8 runs (runs 4 to 8).
    assert calm == ["new", "broke", "recovered"] + ["flapping"] * 5 + ["same"] * 4


def test_the_outcome_bits_stay_bounded() -> None:
    row = None
    for run_number in range(1, 100):
        row = next_row(
            row,
            run=run_number,
            ok=run_number % 3 == 0,
            status=200,
            final=None,
            body=None,
            started_at="t",
        )
        assert row[2] < 1 << 17


@pytest.mark.parametrize(
    ("text", "statuses"),
    [("200", {200}), (" 200 - 202 ,429", {200, 201, 202, 429}), ("599-599", {599})],
)
def test_accept_parses_codes_and_ranges(text: str, statuses: set[int]) -> None:
    assert parse_accept(text) == statuses


@pytest.mark.parametrize("text", ["", "2xx", "299-200", "99", "600", "200,", "200-", "1e3"])
def test_accept_refuses_what_is_not_statuses(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_accept(text)


@given(st.integers(100, 599), st.integers(100, 599))
def test_accept_ranges_are_inclusive(low: int, high: int) -> None:
    if low > high:
        with pytest.raises(PolicyError):
            parse_accept(f"{low}-{high}")
    else:
        assert parse_accept(f"{low}-{high}") == set(range(low, high + 1))


@given(st.text(alphabet="0123456789-, x", max_size=20))
def test_accept_parses_or_refuses_in_one_line(text: str) -> None:
    try:
        statuses = parse_accept(text)
    except PolicyError as exc:
        message = str(exc)
        statuses = None
    if statuses is None:
        assert "\n" not in message
    else:
        assert statuses
        assert all(100 <= status <= 599 for status in statuses)


def test_exit_policy_refuses_nonsense() -> None:
    with pytest.raises(PolicyError):
        ExitPolicy("sometimes")
    with pytest.raises(PolicyError):
        ExitPolicy("any", 0)


def test_a_million_url_store_is_fast_to_open(tmp_path: Path) -> None:
    """A store's size does not slow its opening (SQLite reads nothing up front); the figure
    for a million URLs is in docs/performance.md (bench/history_store.py)."""
    path = str(tmp_path / "h.db")
    history = History(path, resume=False)
    records = [
        Record(url=f"http://127.0.0.1/{i}", status=200, started_at="t") for i in range(20_000)
    ]
    for start in range(0, len(records), 256):
        batch = records[start : start + 256]
        history.judge(batch, [True] * len(batch))
    history.finish()
    history.close()
    started = time.perf_counter()
    history = History(path, resume=False)
    history.judge(records[:1], [False])
    history.close()
    assert time.perf_counter() - started < 1.0
    assert os.path.getsize(path) < 20_000 * 200  # generous: about 70 bytes a URL
