"""Shared fixtures: a real HTTP server on 127.0.0.1 for the whole session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import settings

from afetch._loopback import LoopbackServer
from afetch._redact import PROXY_ENV

#: Proxy variables libcurl reads (and HTTP_PROXY, which it ignores): a developer's proxy must not
#: carry the tests' loopback traffic. The proxy tests set them themselves.
PROXY_VARIABLES = (*PROXY_ENV, "no_proxy", "NO_PROXY")

# No per-example deadline (hypothesis's default is 200 ms): on a loaded machine (CI, xdist's
# workers beside each other) one slow example fails a property as "flaky" that holds. What a
# property proves is its assertions; a bound on time is asserted where time is the point.
settings.register_profile("afetch", deadline=None)
settings.load_profile("afetch")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def fresh_stats(server: LoopbackServer) -> LoopbackServer:
    """The session server with its counters zeroed, for tests that count what it saw."""
    server.stats.reset()
    return server


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml): for the whole suite, two workers per core, since it spends
    most of its time waiting (loopback servers, deadlines, subprocesses starting), not computing:
    on 2 cores, 4 workers finish sooner than 2. Named files or tests run in this one process
    (each worker costs a second or two to start); ``-n 4`` spreads them too."""
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``posix`` (signals, kill -9, symlinks, shell pipes) do not run on Windows."""
    if sys.platform != "win32":
        return
    skip = pytest.mark.skip(reason="needs POSIX signals or file-system features")
    for item in items:
        if item.get_closest_marker("posix") is not None:
            item.add_marker(skip)
