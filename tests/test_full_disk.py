"""A full disk or a file size limit: the output keeps whole records only, and --resume never
glues new records onto a record cut short."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_run import afetch_cli, cli_env, jsonl

pytestmark = pytest.mark.posix

#: Invalid lines make records at once, without any network.
LINES = "".join(f"not-a-url-{i}-{'x' * 80}\n" for i in range(3000))


def run_limited(args: list[str], *, cwd: Path, stdout: object, limit: int | None):
    """afetch with RLIMIT_FSIZE: a write past ``limit`` bytes is cut short, then fails (EFBIG),
    as on a full disk."""
    import resource

    def limit_files() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "afetch", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
        preexec_fn=limit_files,
        timeout=120,
    )


def check_cut_run(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 74, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("afetch: error: cannot write records")


@pytest.mark.parametrize("limit", [20_000, 20_001, 54_321])
def test_a_size_limit_leaves_only_whole_json_lines(tmp_path: Path, limit: int) -> None:
    (tmp_path / "urls.txt").write_text(LINES)
    result = run_limited(
        ["urls.txt", "-o", "out.jsonl"], cwd=tmp_path, stdout=subprocess.DEVNULL, limit=limit
    )
    check_cut_run(result)
    data = (tmp_path / "out.jsonl").read_bytes()
    assert 0 < len(data) <= limit
    records = jsonl(data)  # whole lines only
    assert len(records) < 3000


def test_a_size_limit_leaves_only_whole_csv_rows_on_stdout(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text(LINES)
    with open(tmp_path / "out.csv", "wb") as out:
        result = run_limited(
            ["urls.txt", "--format", "csv"], cwd=tmp_path, stdout=out, limit=30_000
        )
    check_cut_run(result)
    text = (tmp_path / "out.csv").read_text()
    assert text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "url"
    assert all(len(row) == len(rows[0]) for row in rows)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (root only: skipped where it cannot be mounted)."""
    mount = tmp_path / "full"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("to_stdout", [False, True])
def test_a_full_disk_leaves_only_whole_lines(
    tmp_path: Path, small_tmpfs: Path, to_stdout: bool
) -> None:
    (tmp_path / "urls.txt").write_text(LINES * 4)  # about 2.5 MB of records
    target = small_tmpfs / "out.jsonl"
    if to_stdout:
        with open(target, "wb") as out:
            result = run_limited(["urls.txt"], cwd=tmp_path, stdout=out, limit=None)
    else:
        args = ["urls.txt", "-o", str(target)]
        result = run_limited(args, cwd=tmp_path, stdout=subprocess.DEVNULL, limit=None)
    check_cut_run(result)
    assert len(jsonl(target.read_bytes())) > 1000


def test_resume_cuts_a_torn_json_line_before_appending(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"url":"a"}\n{"url":"b"}\n{"url":"htt')
    urls = tmp_path / "urls.txt"
    urls.write_text("not-a-url\n")
    state = tmp_path / "state"
    state.write_text("a\n")  # a run that was stopped: --resume appends to its output
    afetch_cli(str(urls), "-q", "--state", str(state), "--resume", "-o", str(out))
    records = jsonl(out.read_text())
    assert [r["url"] for r in records] == ["a", "b", "not-a-url"]


def test_resume_cuts_a_torn_csv_row_with_a_newline_in_a_cell(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    header = "url,final_url\n"
    # The torn row stops right after a newline inside a quoted cell: it ends in "\n" all the same.
    out.write_text(header + '"a\nb",x\n"c\n')
    urls = tmp_path / "urls.txt"
    urls.write_text("not-a-url\n")
    state = tmp_path / "state"
    state.write_text("a\n")  # a run that was stopped: --resume appends to its output
    afetch_cli(
        str(urls), "-q", "--format", "csv", "--state", str(state), "--resume", "-o", str(out)
    )
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [row[0] for row in rows] == ["url", "a\nb", "not-a-url"]


def test_resume_keeps_a_file_that_ends_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    whole = 'url,final_url\n"a ""q""\nb",x\n'
    out.write_text(whole)
    urls = tmp_path / "urls.txt"
    urls.write_text("not-a-url\n")
    (tmp_path / "s").write_text("a\n")  # a run that was stopped: --resume appends to its output
    args = ["-q", "--format", "csv", "--state", str(tmp_path / "s"), "--resume", "-o", str(out)]
    afetch_cli(str(urls), *args)
    assert out.read_text().startswith(whole)
    assert os.path.getsize(out) > len(whole)
