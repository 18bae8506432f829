"""The command line: in-process through Typer's runner, and as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from afetch import Settings, __version__
from afetch._loopback import LoopbackServer
from afetch._record import SCHEMA_KEYS
from afetch.cli.command import app, main
from afetch.cli.options import CLI_ONLY, DERIVED, OPTIONS
from afetch.input.shard import Shard
from afetch.run import app as _app
from afetch.run.options import RunOptions
from tests.cli_run import afetch_cli, jsonl

RECORD_KEYS = set(SCHEMA_KEYS)


def afetch(
    *args: str, stdin: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return afetch_cli(*args, stdin=stdin, timeout=timeout, env=env)


def records_of(stdout: str) -> list[dict[str, Any]]:
    """Every line a complete record with exactly the schema's keys, and nothing else."""
    records = jsonl(stdout)
    for record in records:
        assert set(record) == RECORD_KEYS
    return records


@pytest.fixture
def url_file(tmp_path: Path, server: LoopbackServer) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text(
        "# a comment, then a blank line\n\n"
        f"{server.url('/ok')}\n"
        f"  {server.url('/status/404')}  \n"
        f"{server.url('/redirect/2')}\n"
        "not a url\n"
    )
    return path


def test_help_shows_examples_and_env_vars() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "afetch urls.txt -c 50" in result.output
    assert "AFETCH_CONCURRENCY" in result.output
    assert "Exit codes" in result.output


def test_version_in_process() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"afetch {__version__}"


def test_main_returns_usage_exit_code_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--concurrency", "0", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("afetch: error:")


def test_file_input_gives_one_record_per_url_and_exit_1(url_file: Path) -> None:
    result = afetch(str(url_file), "-c", "4")
    assert result.returncode == 1  # a 404 and an invalid URL are not ok
    records = records_of(result.stdout)
    assert len(records) == 4
    by_status = {r["url"].strip(): r for r in records}  # type: ignore[union-attr]
    assert by_status["not a url"]["error"]["type"] == "invalid_url"  # type: ignore[index]
    assert "afetch: summary" in result.stderr


def test_all_ok_exits_0(server: LoopbackServer, tmp_path: Path) -> None:
    path = tmp_path / "ok.txt"
    path.write_text("".join(f"{server.url('/ok')}?n={i}\n" for i in range(20)))
    result = afetch(str(path), "-q")
    assert result.returncode == 0
    assert len(records_of(result.stdout)) == 20
    assert result.stderr == ""


def test_piped_stdin_is_read_without_a_source(server: LoopbackServer) -> None:
    urls = [server.url(f"/ok?n={i}") for i in range(5)]
    result = afetch("-q", stdin="\n".join(urls) + "\n")
    assert result.returncode == 0
    assert sorted(r["url"] for r in records_of(result.stdout)) == sorted(urls)  # type: ignore[type-var]


def test_dash_reads_stdin_alongside_files(server: LoopbackServer, url_file: Path) -> None:
    result = afetch(str(url_file), "-", "-q", stdin=server.url("/ok?from=stdin") + "\n")
    assert len(records_of(result.stdout)) == 5


def test_output_file_keeps_stdout_empty(url_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = afetch(str(url_file), "-o", str(out), "-q")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(records_of(out.read_text())) == 4


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-flag"],
        ["/definitely/missing/urls.txt"],
        ["-c", "0", "urls.txt"],
        ["-X", "DELETE", "urls.txt"],
        ["-H", "no colon here", "urls.txt"],
        ["--timeout", "-1", "urls.txt"],
        ["--timeout", "inf", "urls.txt"],
        ["-A", "bot\r\nX-Injected: 1", "urls.txt"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str]) -> None:
    result = afetch(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("afetch: error:")
    assert "Traceback" not in result.stderr


@pytest.mark.posix  # Windows says 'Permission denied'
def test_unreadable_directory_source_is_a_usage_error(tmp_path: Path) -> None:
    result = afetch(str(tmp_path))
    assert result.returncode == 2
    assert "is a directory" in result.stderr


class _Terminal:
    def isatty(self) -> bool:
        return True


def test_no_source_and_a_terminal_stdin_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal())
    assert main([]) == 2
    assert "no input" in capsys.readouterr().err


def test_a_url_given_as_source_gets_a_hint(server: LoopbackServer) -> None:
    result = afetch(server.url("/ok"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "pipe" in result.stderr


def test_headers_are_sent_and_never_echoed(fresh_stats: LoopbackServer, tmp_path: Path) -> None:
    server = fresh_stats
    secret = "Bearer top-secret-value-123"
    path = tmp_path / "u.txt"
    path.write_text(f"{server.url('/status/500')}\nnot a url\n{server.url('/headers')}\n")
    result = afetch(str(path), "-c", "1", "-H", f"Authorization: {secret}", "--progress")
    assert server.stats.last_headers["authorization"] == secret  # /headers came last (-c 1)
    assert "top-secret" not in result.stdout
    assert "top-secret" not in result.stderr


def test_user_agent_and_header_reach_the_server(fresh_stats: LoopbackServer) -> None:
    server = fresh_stats
    result = afetch("-", "-q", "-H", "X-Probe: 1", "-A", "probe/9", stdin=server.url("/headers"))
    assert result.returncode == 0
    assert server.stats.last_headers["x-probe"] == "1"
    assert server.stats.last_headers["user-agent"] == "probe/9"


def test_env_vars_configure_options(server: LoopbackServer) -> None:
    result = afetch(
        "-", stdin=server.url("/redirect/2") + "\n", env={"AFETCH_FOLLOW": "0", "AFETCH_QUIET": "1"}
    )
    (record,) = records_of(result.stdout)
    assert record["status"] == 302
    assert result.stderr == ""


def test_head_method(server: LoopbackServer) -> None:
    result = afetch("-", "-X", "head", "-q", stdin=server.url("/ok") + "\n")
    (record,) = jsonl(result.stdout)
    assert record.pop("method") == "HEAD"  # with -X every record says its method
    assert set(record) == RECORD_KEYS
    assert (record["status"], record["bytes"]) == (200, 0)


def test_no_follow_and_max_redirects(server: LoopbackServer) -> None:
    stdin = server.url("/redirect/3") + "\n"
    (record,) = records_of(afetch("-", "--no-follow", "-q", stdin=stdin).stdout)
    assert (record["status"], record["redirects"]) == (302, 0)
    (record,) = records_of(afetch("-", "--max-redirects", "1", "-q", stdin=stdin).stdout)
    assert record["error"]["type"] == "too_many_redirects"  # type: ignore[index]


def test_forced_progress_writes_only_to_stderr(url_file: Path) -> None:
    result = afetch(str(url_file), "--progress")
    assert len(records_of(result.stdout)) == 4
    assert "afetch: summary" in result.stderr


def test_demo_runs_offline_and_reports_every_url() -> None:
    result = afetch("--demo", "-c", "50", "--timeout", "1")
    assert result.returncode == 1  # the demo includes failing URLs on purpose
    records = records_of(result.stdout)
    assert len(records) == 300
    kinds = {r["error"]["type"] for r in records if r["error"]}  # type: ignore[index]
    assert {"timeout", "invalid_url", "protocol"} <= kinds
    assert sum(1 for r in records if r["ok"]) >= 200


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_failing_output_is_one_line_and_exit_74(server: LoopbackServer) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "afetch", "-", "-q"],
            input=server.url("/ok") + "\n",
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 74
    assert result.stderr.startswith("afetch: error: cannot write records:")
    assert result.stderr.count("\n") == 1


def test_output_that_is_also_an_input_is_refused(url_file: Path) -> None:
    before = url_file.read_text()
    result = afetch(str(url_file), "-o", str(url_file))
    assert result.returncode == 2
    assert "also an input file" in result.stderr
    assert url_file.read_text() == before  # not emptied


def test_every_option_fills_a_field_and_every_field_has_an_option() -> None:
    settings = {f.name for f in fields(Settings)}
    run_options = {f.name for f in fields(RunOptions)} - {"sources", "reads"}  # reads: of -d
    filled = [spec.field for spec in OPTIONS]
    assert len(filled) == len(set(filled))
    assert set(filled) == (settings - DERIVED) | run_options | CLI_ONLY
    assert all(spec.envvar == f"AFETCH_{spec.name.upper()}" for spec in OPTIONS if spec.env)


def run_in_process(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, RunOptions]:
    """What the command hands to the run, without running it."""
    seen: list[Any] = []

    async def fake_run(settings: Settings, options: RunOptions, **kwargs: Any) -> int:
        seen.extend((settings, options))
        return 0

    monkeypatch.setattr(_app, "run", fake_run)
    assert main(argv) == 0
    return seen[0], seen[1]


def test_options_reach_settings_and_run_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "urls.txt"
    source.write_text("http://127.0.0.1:9/\n")
    # A few flags of each kind: renamed (-k, --no-follow, --hash, --cache), parsed (-H,
    # --max-size, --shard), enums (-X, --format), and one from the environment.
    monkeypatch.setenv("AFETCH_PROGRESS_INTERVAL", "2.5")
    settings, options = run_in_process(
        [str(source), "-k", "--no-follow", "--hash", "--cache", "c", "-H", "A: b", "--max-size",
         "1K", "-X", "head", "--format", "CSV", "--shard", "0/2", "--no-progress", "-c", "7"],
        monkeypatch,
    )  # fmt: skip
    assert (settings.verify, settings.follow_redirects, settings.hash_bodies) == (
        False,
        False,
        True,
    )
    assert (settings.cache_dir, settings.headers, settings.max_size) == ("c", (("A", "b"),), 1024)
    assert (settings.method, settings.concurrency) == ("HEAD", 7)
    assert (options.sources, options.format, options.shard) == ((str(source),), "csv", Shard(0, 2))
    assert (options.progress, options.progress_interval) == (False, 2.5)
    assert settings == Settings(
        concurrency=7,
        headers=(("A", "b"),),
        method="HEAD",
        follow_redirects=False,
        verify=False,
        max_size=1024,
        cache_dir="c",
        hash_bodies=True,
    )  # and every other field at the library's default


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_progress_interval_must_be_a_positive_number(value: str) -> None:
    result = afetch("--progress-interval", value, "urls.txt")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--progress-interval" in result.stderr
