"""Every path of a run checked against the others before anything is opened for writing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from afetch._loopback import LoopbackServer
from afetch.input.reader import open_sources
from afetch.run.paths import path_problem
from tests.cli_run import afetch_cli, cli_env, jsonl


def _problem(tmp_path: Path, sources: list[Path], **paths: object) -> str:
    """The problem path_problem finds, or "" for none."""
    names = [str(p) for p in sources]
    fds = open_sources(names)
    try:
        return (
            path_problem(sources=names, source_fds=fds, **{"output": None, "state": None, **paths})  # type: ignore[arg-type]
            or ""
        )
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture
def urls(tmp_path: Path) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text("http://127.0.0.1:9/a\n")
    return path


@pytest.mark.posix
def test_a_written_path_may_not_be_an_input_by_any_name(tmp_path: Path, urls: Path) -> None:
    link = tmp_path / "hard-link"
    os.link(urls, link)
    symlink = tmp_path / "sym-link"
    symlink.symlink_to(urls)
    for paths in (
        {"state": str(urls)},
        {"state": str(link)},
        {"output": str(symlink)},
        {"output": str(tmp_path / "." / "urls.txt")},
        {"cacert": str(urls), "output": str(urls)},
    ):
        problem = _problem(tmp_path, [urls], **paths)
        assert "is also an input file" in problem, paths
    assert "--cacert" in _problem(tmp_path, [], output=str(urls), cacert=str(link))
    assert "-d/--json file" in _problem(tmp_path, [], state=str(urls), body_files=[str(link)])


def test_two_written_paths_may_not_be_one_file(tmp_path: Path, urls: Path) -> None:
    # Neither exists yet: compared by resolved path.
    problem = _problem(tmp_path, [urls], output=str(tmp_path / "s"), state=f"{tmp_path}/./s")
    assert "is also the --state" in problem
    cache = tmp_path / "cache"
    problem = _problem(
        tmp_path, [urls], state=str(cache / "index.sqlite-wal"), cache_dir=str(cache)
    )
    assert "--cache" in problem
    assert _problem(tmp_path, [urls], output=str(tmp_path / "o"), state=str(tmp_path / "s")) == ""


def test_save_dir_may_hold_inputs_and_outputs_unless_a_body_could_replace_them(
    tmp_path: Path,
) -> None:
    pages = tmp_path / "pages"
    (pages / "h").mkdir(parents=True)
    beside = pages / "urls.txt"  # a saved body is always DIR/HOST/NAME: never here
    beside.write_text("http://127.0.0.1:9/a\n")
    clash = pages / "h" / "index__0123456789abcdef.txt"
    clash.write_text("http://127.0.0.1:9/a\n")
    assert (
        _problem(tmp_path, [beside], output=str(pages / "h" / "out.jsonl"), save_dir=str(pages))
        == ""
    )
    problem = _problem(tmp_path, [clash], save_dir=str(pages))
    assert "saved body could replace it" in problem
    problem = _problem(tmp_path, [beside], output=str(clash), save_dir=str(pages))
    assert "saved body" in problem


def test_state_naming_the_input_is_refused_before_anything_is_written(urls: Path) -> None:
    # It used to empty the URL list: 0 records, exit 0.
    before = urls.read_text()
    result = afetch_cli(str(urls), "--state", str(urls))
    assert result.returncode == 2
    assert result.stderr == (
        f"afetch: error: --state {urls} is also an input file ({urls}): it would be written over\n"
    )
    assert result.stdout == ""
    assert urls.read_text() == before


@pytest.mark.posix
def test_stdout_appending_to_the_input_is_refused(urls: Path) -> None:
    # `afetch urls.txt >> urls.txt` would read its own records as request objects, for ever.
    before = urls.read_bytes()
    with urls.open("ab") as stdout:
        result = subprocess.run(
            [sys.executable, "-m", "afetch", str(urls)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=cli_env(),
            timeout=60,
        )
    assert result.returncode == 2
    assert b"stdout is also an input file" in result.stderr
    assert urls.read_bytes() == before


def test_missing_parents_of_the_output_and_state_are_created(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # The cron recipe's -o "out/$(date +%F).jsonl" used to fail on its first night (exit 2).
    out = tmp_path / "out" / "2026-12-07" / "results.jsonl"
    state = tmp_path / "state" / "run.state"
    result = afetch_cli("-q", "-o", str(out), "--state", str(state), stdin=server.url("/ok") + "\n")
    assert result.returncode == 0, result.stderr
    assert [r["ok"] for r in jsonl(out.read_text())] == [True]
    assert state.exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = afetch_cli("-q", "-o", str(blocked / "x.jsonl"), stdin=server.url("/ok") + "\n")
    assert result.returncode == 2
    assert result.stderr.startswith(f"afetch: error: cannot create {blocked}:")


def test_an_output_naming_a_body_file_is_refused(tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"a": 1}')
    result = afetch_cli("--json", f"@{payload}", "-o", str(payload), stdin="http://127.0.0.1:9/\n")
    assert result.returncode == 2
    assert result.stderr == (
        f"afetch: error: -o {payload} is also a -d/--json file ({payload}):"
        " it would be written over\n"
    )
    assert payload.read_text() == '{"a": 1}'
