"""Shared fixtures: a real HTTP server on 127.0.0.1 for the whole session."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from afetch._loopback import LoopbackServer


@pytest.fixture(scope="session")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def fresh_stats(server: LoopbackServer) -> LoopbackServer:
    """The session server with its counters zeroed, for tests that count what it saw."""
    server.stats.reset()
    return server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``posix`` (signals, kill -9, symlinks, shell pipes) do not run on Windows."""
    if sys.platform != "win32":
        return
    skip = pytest.mark.skip(reason="needs POSIX signals or file-system features")
    for item in items:
        if item.get_closest_marker("posix") is not None:
            item.add_marker(skip)
