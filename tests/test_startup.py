"""Start-up stays light: --version, --help and usage errors load no engine, no Rich, and nothing
only a run needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from afetch import __version__

HEAVY = ("pycurl", "httpx", "aiohttp", "rich", "afetch.engine.curl", "afetch.engine.base")

PROBE = """
import sys
from afetch.cli.command import main
try:
    code = main({argv!r})
except SystemExit as exit:
    code = exit.code
print(sorted(name for name in {heavy!r} if name in sys.modules))
"""


#: Nor records, JSON, sockets or TLS: what only a run (or --shard's parsing) needs.
RUN_ONLY = ("afetch._record", "afetch._spec", "afetch._errors", "json", "socket", "ssl")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["--no-such-flag"], ["-c", "0"]])
def test_no_engine_is_imported(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=(*HEAVY, *RUN_ONLY))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_a_run_to_a_log_loads_only_the_engine(tmp_path) -> None:
    """A run on libcurl whose stderr is a file (cron, a pipe) loads neither httpx (the adapter),
    Rich (terminal only), pydantic (Typer >= 0.29 converts options through it), sqlite3
    (--cache, --history), hashlib (--state, --shard, --hash, request objects), certifi's module
    (its bundle is found without it), email.utils (an HTTP-date Retry-After), jq (--ok-if),
    --shard's module, --include soft404's, the writers of --report (only its registry, for
    the option), --state's journal, afetch.watch, --rate-limit-headers' quota reader, csv,
    random nor a thread pool."""
    urls = tmp_path / "urls.txt"
    # Refused at once (port 9 on loopback): no server needed, and the record is still written.
    urls.write_text("http://127.0.0.1:9/\n")
    probe = PROBE.format(
        argv=[str(urls), "--retries", "0"],
        heavy=(
            *HEAVY,
            *("pydantic", "sqlite3", "hashlib", "certifi", "email.utils", "afetch.input.shard"),
            *("jq", "afetch.attempt.soft404", "afetch.attempt.canary"),
            *("afetch.reports.collect", "afetch.reports.summary", "afetch.reports.prom"),
            *("afetch.reports.junit", "afetch.reports.markdown", "prometheus_client"),
            # Nor --state's journal, afetch.watch (no judge without its options), the CSV
            # writer, retries' random, or asyncio's executor thread (nothing blocks to open).
            *("afetch.input.journal", "afetch.watch.judge", "afetch.watch.policy", "csv"),
            *("random", "concurrent.futures.thread"),
            # Nor --rate-limit-headers' reading of quotas.
            "afetch.schedule.ratelimit",
        ),
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "afetch: summary" in done.stderr  # the plain summary, without Rich
    assert (
        done.stdout.strip().splitlines()[-1]
        == "['afetch.engine.base', 'afetch.engine.curl', 'pycurl']"
    ), done.stdout + done.stderr


ENTRY_PROBE = """
import sys
sys.argv = ["afetch", *{argv!r}]
from afetch.cli.entry import main
code = main()
print(code, sorted(name for name in {heavy!r} if name in sys.modules))
"""


def test_version_loads_neither_typer_nor_typing(monkeypatch) -> None:
    """``afetch --version`` alone answers before Typer builds the command (and loads typing),
    and before the signal handlers (signal's enums, threading): the interpreter's start-up and a
    few small modules, nothing more."""
    monkeypatch.delenv("_AFETCH_COMPLETE", raising=False)
    heavy = ("typer", "click", "typing", "re", "afetch.cli.command", "afetch.cli.options")
    heavy += ("signal", "enum", "threading", "afetch.run.signals")
    done = subprocess.run(
        [sys.executable, "-c", ENTRY_PROBE.format(argv=["--version"], heavy=heavy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.splitlines() == [f"afetch {__version__}", "0 []"], done.stdout + done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("argv", [["--version", "-c", "5"], ["urls.txt", "--version"]])
def test_version_among_other_arguments_goes_through_typer(argv: list[str]) -> None:
    """Only a lone --version takes the fast path; anything else is Typer's to parse (it prints
    the same line: --version is eager)."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY_PROBE.format(argv=argv, heavy=("typer",))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.splitlines() == [f"afetch {__version__}", "0 ['typer']"], (
        done.stdout + done.stderr
    )


GC_PROBE = """
import gc, sys
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
sys.argv = ["afetch", *{argv!r}]
from afetch.cli.entry import main
code = main()
print(code, len(collections))
"""


def test_start_up_leaves_the_collector_alone(tmp_path) -> None:
    """Start-up's objects live until exit, so the collector stays off while afetch loads: a
    one-URL run collects a handful of times (interpreter start and exit), not ~50 (once per 700
    objects made)."""
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/\n")  # refused at once: a record, no server needed
    done = subprocess.run(
        [sys.executable, "-c", GC_PROBE.format(argv=[str(urls), "--retries", "0", "-q"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    code, collections = done.stdout.strip().splitlines()[-1].split()
    assert code == "1", done.stdout + done.stderr  # the URL was refused: not ok
    assert int(collections) < 15, done.stdout + done.stderr


EXIT_PROBE = """
import atexit, sys, threading
class Teardown:
    def __del__(self):  # runs only when the interpreter takes __main__ apart at exit
        sys.__stderr__.write("teardown\\n")
keep = Teardown()
atexit.register(lambda: sys.__stderr__.write("atexit\\n"))
{setup}
sys.argv = ["afetch", *{argv!r}]
from afetch.cli.entry import run
run()
"""


def _exit_probe(argv: list[str], setup: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EXIT_PROBE.format(argv=argv, setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_finished_run_exits_without_the_teardown_but_with_its_exit_handlers(tmp_path) -> None:
    """The process ends with the run's code once the exit handlers ran and stdout is flushed:
    taking every module apart first (~2.5% of a one-URL run) would change nothing."""
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/\n")  # refused at once: a record, no server needed
    done = _exit_probe([str(urls), "--retries", "0", "-q"])
    assert done.returncode == 1, done.stderr  # the URL was refused: not ok
    assert '"error":{"type":"connect"' in done.stdout  # the record, whole
    assert done.stderr.splitlines() == ["atexit"], done.stderr  # no "teardown"
    version = _exit_probe(["--version"])  # print's buffered stdout (a pipe) is flushed
    assert (version.returncode, version.stdout) == (0, f"afetch {__version__}\n")
    assert version.stderr.splitlines() == ["atexit"], version.stderr


def test_a_thread_still_running_gets_the_interpreters_own_exit() -> None:
    """A thread that is not a daemon is waited for, as Python does: the normal exit then."""
    release = "threading.Timer(0.2, lambda: sys.__stderr__.write('thread\\n')).start()"
    done = _exit_probe(["--version"], setup=release)
    assert (done.returncode, done.stdout) == (0, f"afetch {__version__}\n")
    assert done.stderr.splitlines() == ["thread", "atexit", "teardown"], done.stderr


def test_a_profiled_run_gets_the_interpreters_own_exit(tmp_path) -> None:
    # python -m cProfile (and a tracer such as coverage) writes its results after the program
    # returns: the fast exit would lose them.
    stats = tmp_path / "profile.out"
    argv = [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "afetch", "--version"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert __version__ in done.stdout
    assert stats.stat().st_size > 0
