"""Property: any mix of faults yields exactly one record per URL, and the right exit code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afetch import Record
from afetch._loopback import LoopbackServer
from tests.helpers import collect

# route → (ok, error type or None): what one URL of that route must end as.
ROUTES: dict[str, tuple[bool, str | None]] = {
    "/ok": (True, None),
    "/redirect/2": (True, None),
    "/gzip-bomb?mb=1": (True, None),
    "/drip?n=3&interval=0.05": (True, None),
    "/sleep/30": (True, None),
    "/status/404": (False, None),
    "/status/500": (False, None),
    "/truncate": (False, "protocol"),
    "/reset-body": (False, "protocol"),
    "/garbage": (False, "protocol"),
    "/huge-header": (False, "protocol"),
    "/reset": (False, "reset"),
    "/loop": (False, "too_many_redirects"),
    "/hang": (False, "timeout"),
    "not a url": (False, "invalid_url"),
}
TIMEOUT = "0.5"  # /hang ends here; every other route answers well within it
#: Retries still wait on their timers, but a hundredth of the default pause (up to 0.5 s, then
#: 1 s, per retried URL, at a concurrency down to 1): the faults are the point, not the wait.
BACKOFF = "0.01"

routes = st.lists(st.sampled_from(sorted(ROUTES)), min_size=0, max_size=25)


def url_for(server: LoopbackServer, route: str) -> str:
    return server.url(route) if route.startswith("/") else route


def assert_outcomes(records: list[Record], server: LoopbackServer, mix: list[str]) -> None:
    """Exactly one record per URL, each with the outcome its route must give."""
    assert Counter(r.url for r in records) == Counter(url_for(server, route) for route in mix)
    route_of = {url_for(server, route): route for route in mix}
    for record in records:
        ok, error = ROUTES[route_of[record.url]]
        assert record.ok is ok, record
        assert (record.error.type if record.error else None) == error, record


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mix=routes, concurrency=st.integers(min_value=1, max_value=8))
def test_core_one_record_per_url_with_the_right_outcome(
    server: LoopbackServer, mix: list[str], concurrency: int
) -> None:
    urls = [url_for(server, route) for route in mix]
    options = {"timeout": float(TIMEOUT), "backoff": float(BACKOFF)}
    records = collect(urls, concurrency=concurrency, **options)
    assert_outcomes(records, server, mix)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mix=routes, concurrency=st.integers(min_value=1, max_value=8))
def test_core_outcomes_are_the_same_through_aiohttp(
    server: LoopbackServer, mix: list[str], concurrency: int
) -> None:
    transport_module = pytest.importorskip("httpx_aiohttp")
    urls = [url_for(server, route) for route in mix]

    async def run() -> list[Record]:
        import afetch

        transport = transport_module.AiohttpTransport()
        try:
            options = {"timeout": float(TIMEOUT), "backoff": float(BACKOFF)}
            options["concurrency"] = concurrency
            return [r async for r in afetch.fetch(urls, transport=transport, **options)]
        finally:
            await transport.aclose()

    records = asyncio.run(run())
    assert_outcomes(records, server, mix)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mix=routes)
def test_cli_one_record_per_line_and_exit_code(
    server: LoopbackServer, tmp_path_factory: object, mix: list[str]
) -> None:
    urls = [url_for(server, route) for route in mix]
    source = Path(tmp_path_factory.mktemp("mix")) / "urls.txt"  # type: ignore[attr-defined]
    source.write_text("".join(f"{url}\n" for url in urls))
    pace = ("--timeout", TIMEOUT, "--backoff", BACKOFF)
    result = subprocess.run(
        [sys.executable, "-m", "afetch", str(source), "-c", "8", "-q", *pace],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "" or result.stdout.endswith("\n")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert Counter(r["url"] for r in records) == Counter(urls)
    all_ok = all(ROUTES[route][0] for route in mix)
    assert result.returncode == (0 if all_ok else 1), result.stderr
    assert result.stderr == ""
