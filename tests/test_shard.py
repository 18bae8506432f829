"""--shard K/N: stable, disjoint and complete parts of one list."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afetch._loopback import LoopbackServer
from afetch.input.shard import Shard, ShardError, parse_shard, part_of
from tests.cli_run import afetch_cli, jsonl


@given(st.lists(st.text(min_size=1, max_size=60)), st.integers(min_value=1, max_value=12))
def test_shards_partition_any_list(urls: list[str], count: int) -> None:
    parts = [[u for u in urls if Shard(k, count).keeps(u)] for k in range(count)]
    # Complete: every URL (duplicates included) lands in some part...
    assert sorted(u for part in parts for u in part) == sorted(urls)
    # ...and disjoint: in exactly one.
    for url in urls:
        assert sum(Shard(k, count).keeps(url) for k in range(count)) == 1


def test_the_hash_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; ours must give the same part everywhere.
    code = "from afetch.input.shard import part_of; print(part_of('https://example.org/x', 7))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == str(part_of("https://example.org/x", 7))


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("0/1", {}, Shard(0, 1)),
        ("3/4", {}, Shard(3, 4)),
        (" 2/5 ", {}, Shard(2, 5)),
        ("auto/4", {"JOB_COMPLETION_INDEX": "2"}, Shard(2, 4)),
        ("auto/4", {"SLURM_ARRAY_TASK_ID": "1"}, Shard(1, 4)),
        ("auto/4", {"JOB_COMPLETION_INDEX": "0", "SLURM_ARRAY_TASK_ID": "3"}, Shard(0, 4)),
    ],
)
def test_parse_shard(text: str, environ: dict[str, str], expected: Shard) -> None:
    assert parse_shard(text, environ) == expected


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        ("4/4", {}),
        ("-1/4", {}),
        ("1/0", {}),
        ("x/4", {}),
        ("1", {}),
        ("auto/4", {}),
        ("auto/4", {"JOB_COMPLETION_INDEX": "4"}),
        ("auto/4", {"SLURM_ARRAY_TASK_ID": "abc"}),
    ],
)
def test_bad_shards_are_refused(text: str, environ: dict[str, str]) -> None:
    with pytest.raises(ShardError):
        parse_shard(text, environ)


def _clean_env() -> dict[str, str]:
    return {"JOB_COMPLETION_INDEX": "", "SLURM_ARRAY_TASK_ID": ""}


def test_cli_shards_split_a_list_between_workers(server: LoopbackServer) -> None:
    urls = [server.url(f"/ok?size=1&shard={i}") for i in range(60)]
    stdin = "\n".join(urls) + "\n"
    seen: list[str] = []
    for k in range(2):
        # Slurm style for one worker, explicit K for the other.
        if k == 1:
            env = {**_clean_env(), "SLURM_ARRAY_TASK_ID": "1"}
            result = afetch_cli("-q", "--shard", "auto/2", stdin=stdin, env=env)
        else:
            result = afetch_cli("-q", "--shard", f"{k}/2", stdin=stdin, env=_clean_env())
        assert result.returncode == 0, result.stderr
        part = [record["url"] for record in jsonl(result.stdout)]
        assert all(Shard(k, 2).keeps(url) for url in part)
        seen += part
    assert sorted(seen) == sorted(urls)


@pytest.mark.parametrize("value", ["auto/3", "3/3", "1/x"])
def test_cli_bad_shard_is_one_line_and_exit_2(value: str) -> None:
    result = afetch_cli("--shard", value, stdin="http://127.0.0.1:9/\n", env=_clean_env())
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--shard" in result.stderr


def test_shard_from_the_environment_variable(server: LoopbackServer) -> None:
    urls = [server.url(f"/ok?size=1&env={i}") for i in range(20)]
    result = afetch_cli(
        "-q", stdin="\n".join(urls) + "\n", env={**_clean_env(), "AFETCH_SHARD": "1/2"}
    )
    got = {record["url"] for record in jsonl(result.stdout)}
    assert got == {url for url in urls if Shard(1, 2).keeps(url)}
