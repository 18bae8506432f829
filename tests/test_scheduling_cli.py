"""The scheduling options on the real command line (a subprocess)."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid

import pytest

from afetch._loopback import LoopbackServer
from tests.cli_run import afetch_cli


def afetch(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return afetch_cli(*args, stdin=stdin, env=env)


@pytest.mark.parametrize(
    "args",
    [
        ["--retries", "-1"],
        ["--retries", "many"],
        ["--backoff", "-0.5"],
        ["--backoff", "nan"],
        ["--max-retry-wait", "-1"],
        ["--per-host", "0"],
        ["--per-host", "1.5"],
        ["--rate", "0"],
        ["--rate", "-3"],
        ["--host-rate", "0"],
        ["--host-rate", "fast"],
        ["--max-host-errors", "0"],
    ],
)
def test_bad_values_are_usage_errors(args: list[str]) -> None:
    result = afetch(*args, stdin="http://127.0.0.1:9/\n")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("afetch: error:")
    assert args[0] in lines[0]


def test_bad_value_from_the_environment_is_a_usage_error() -> None:
    result = afetch(stdin="http://127.0.0.1:9/\n", env={"AFETCH_PER_HOST": "none"})
    assert result.returncode == 2
    assert "AFETCH_PER_HOST" in result.stderr


def test_retries_and_backoff_on_the_command_line(server: LoopbackServer) -> None:
    url = server.url(f"/flaky/{uuid.uuid4().hex[:12]}/3")
    result = afetch("--retries", "3", "--backoff", "0", "-q", stdin=url + "\n")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["status"], record["attempts"], record["ok"]) == (200, 4, True)


def test_host_unreachable_from_the_environment(server: LoopbackServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    urls = [f"http://127.0.0.1:{port}/{i}" for i in range(5)] + [server.url("/ok")]
    result = afetch(
        "-c",
        "1",
        "-q",
        stdin="\n".join(urls) + "\n",
        env={"AFETCH_MAX_HOST_ERRORS": "2", "AFETCH_RETRIES": "0", "AFETCH_PER_HOST": "1"},
    )
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 6
    kinds = [r["error"]["type"] if r["error"] else None for r in records]
    assert kinds.count("connect") == 2
    assert kinds.count("host_unreachable") == 3
    assert kinds.count(None) == 1
    skipped = [r for r in records if r["error"] and r["error"]["type"] == "host_unreachable"]
    assert all(r["attempts"] == 0 for r in skipped)
