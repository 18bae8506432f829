"""Open-file limits: the soft limit is raised for ``-c``; a low hard limit lowers ``-c``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from afetch._loopback import LoopbackServer
from afetch.run.fdlimit import Plan, per_request, plan, reserved
from tests.cli_run import cli_env, jsonl

resource = pytest.importorskip("resource")


def test_plan_leaves_a_sufficient_soft_limit_alone() -> None:
    assert plan(concurrency=10, soft=1024, hard=4096, per_request=2, reserved=42) == Plan(None, 10)
    assert plan(concurrency=491, soft=1024, hard=1024, per_request=2, reserved=42) == Plan(
        None, 491
    )


def test_plan_raises_the_soft_limit_just_as_far_as_needed() -> None:
    assert plan(concurrency=1000, soft=256, hard=65536, per_request=2, reserved=42) == Plan(
        2042, 1000
    )
    # A negative hard limit is RLIM_INFINITY.
    assert plan(concurrency=1000, soft=256, hard=-1, per_request=2, reserved=42) == Plan(2042, 1000)


def test_plan_lowers_the_concurrency_to_fit_the_hard_limit() -> None:
    # (256 - 42) // 2 = 107 requests fit.
    assert plan(concurrency=1000, soft=256, hard=256, per_request=2, reserved=42) == Plan(256, 107)
    # Never below one request, however low the limit.
    assert plan(concurrency=50, soft=16, hard=16, per_request=4, reserved=42) == Plan(16, 1)


def test_what_a_request_and_a_run_hold() -> None:
    assert per_request(save=False, cache=False) == 2
    assert per_request(save=True, cache=True) == 5
    assert reserved(sources=3) == reserved(sources=0) + 6


def with_nofile(soft: int, hard: int | None) -> Callable[[], None]:
    def set_limits() -> None:
        current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))

    return set_limits


def run_limited(
    server: LoopbackServer,
    tmp_path: Path,
    *,
    soft: int,
    hard: int | None,
    concurrency: int,
    count: int,
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    # Answers held back 300 ms, so that -c requests are really open at once.
    sources = tmp_path / "urls.txt"
    sources.write_text("".join(f"{server.url('/sleep/300')}?fd={i}\n" for i in range(count)))
    result = subprocess.run(
        [sys.executable, "-m", "afetch", str(sources), "-c", str(concurrency), "-q"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        preexec_fn=with_nofile(soft, hard),
    )
    return result, jsonl(result.stdout)


def test_a_low_soft_limit_is_raised_silently(fresh_stats: LoopbackServer, tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip("the hard limit of this machine is too low for the test")
    result, records = run_limited(
        fresh_stats, tmp_path, soft=64, hard=None, concurrency=200, count=600
    )
    assert result.returncode == 0, result.stderr
    assert len(records) == 600
    assert [r for r in records if r["error"]] == []
    assert result.stderr == ""
    # Far more connections were open at once than the soft limit of 64 allowed.
    assert fresh_stats.stats.max_in_flight > 100


def test_a_low_hard_limit_lowers_the_concurrency_with_one_warning(
    fresh_stats: LoopbackServer, tmp_path: Path
) -> None:
    # 60 URLs: unlowered, all would be in flight at once; lowered (to 10 here), six rounds of
    # 300 ms (200 URLs took twenty, 6 s, proving no more).
    result, records = run_limited(
        fresh_stats, tmp_path, soft=64, hard=64, concurrency=200, count=60
    )
    assert result.returncode == 0, result.stderr
    assert len(records) == 60
    assert [r for r in records if r["error"]] == []
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("afetch: warning: -c 200 lowered to "), lines[0]
    lowered = int(lines[0].split("lowered to ")[1].split(":")[0])
    assert 1 <= lowered < 64
    assert fresh_stats.stats.max_in_flight <= lowered


def test_the_soft_limit_is_raised_for_the_idle_connections_the_pool_keeps() -> None:
    # The pool keeps 3 × -c idle connections, 2,000 at most (afetch.engine.connections): the
    # soft limit is raised for those, not for 3 × -c (at -c 10,000: 30,000 descriptors more).
    code = (
        "import resource\n"
        "from afetch.run.fdlimit import ensure, reserved\n"
        "print(ensure(2000, sources=1, save=False, cache=False))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 2 * 2000 + reserved(sources=1))\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 12_000:
        pytest.skip("the hard limit of this machine is too low for the test")
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        preexec_fn=with_nofile(1024, None),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "(2000, None)"
    soft, requests = map(int, lines[1].split())
    assert soft == requests + 2000
