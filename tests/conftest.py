"""Shared fixtures: a real HTTP server on 127.0.0.1 for the whole session."""

from __future__ import annotations

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
