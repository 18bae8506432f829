"""--confirm: failures are tried once more at the end of the run (afetch.schedule.confirm)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

import httpx
import pytest

import afetch
from afetch._loopback import LoopbackServer
from tests.cli_run import afetch_cli, jsonl
from tests.fake_clock import FakeClock, Recorder, collect_on
from tests.helpers import by_url, collect


@pytest.fixture(scope="module")
def server():
    with LoopbackServer() as running:
        yield running


def _key() -> str:
    return uuid.uuid4().hex[:8]


def test_a_blip_is_not_a_failure_and_a_lasting_failure_is_confirmed(server) -> None:
    key = _key()
    blip, down, fine = (
        server.url(f"/flaky/{key}/1"),  # 503 once, then 200
        server.url(f"/status/500?{key}"),
        server.url(f"/ok?{key}"),
    )
    args = ("--retries", "0", "--confirm", "--confirm-delay", "0.2")
    result = afetch_cli(*args, stdin=f"{blip}\n{down}\n{fine}\n")
    records = {r["url"]: r for r in jsonl(result.stdout)}
    assert len(records) == 3
    assert (records[blip]["status"], records[blip]["ok"], records[blip]["confirmed"]) == (
        200,
        True,
        False,
    )
    assert records[blip]["attempts"] == 2
    assert (records[down]["status"], records[down]["confirmed"]) == (500, True)
    assert records[down]["attempts"] == 2
    assert records[fine]["confirmed"] is None
    assert result.returncode == 1  # the confirmed failure
    # Only the blip: the run judges the confirmed outcome.
    result = afetch_cli(*args, stdin=f"{server.url(f'/flaky/{_key()}/1')}\n")
    assert result.returncode == 0, result.stderr
    assert jsonl(result.stdout)[0]["confirmed"] is False


def test_without_confirm_the_blip_fails_and_no_key_is_added(server) -> None:
    result = afetch_cli("--retries", "0", stdin=server.url(f"/flaky/{_key()}/1") + "\n")
    (record,) = jsonl(result.stdout)
    assert record["status"] == 503
    assert "confirmed" not in record
    assert result.returncode == 1


def test_the_pause_comes_before_the_confirming_try(server) -> None:
    url = server.url(f"/flaky/{_key()}/1")
    started = time.monotonic()
    (record,) = collect([url], retries=0, confirm=True, confirm_delay=1.0)
    assert time.monotonic() - started >= 1.0
    assert record.confirmed is False


def test_a_failed_head_is_confirmed_with_a_get(server) -> None:
    url = server.url(f"/no-head?{_key()}")
    result = afetch_cli(
        "-X", "HEAD", "--retries", "0", "--confirm", "--confirm-delay", "0", stdin=url + "\n"
    )
    (record,) = jsonl(result.stdout)
    assert (record["status"], record["method"], record["confirmed"]) == (200, "GET", False)
    assert result.returncode == 0


def test_what_another_try_cannot_change_is_not_tried_again() -> None:
    with LoopbackServer() as server:
        post = json.dumps({"url": server.url("/status/500"), "method": "POST"})
        lines = f"{post}\nhttp://\n{server.url('/status/500')}\n"
        result = afetch_cli("--retries", "0", "--confirm", "--confirm-delay", "0", stdin=lines)
        records = jsonl(result.stdout)
        assert [r["confirmed"] for r in records[:2]] == [None, None]  # the POST, an invalid URL
        assert records[2]["confirmed"] is True  # the GET
        assert server.stats.by_method[("POST", "/status/500")] == 1
        assert server.stats.by_method[("GET", "/status/500")] == 2


def test_with_ordered_records_wait_for_the_held_one_and_keep_their_order(server) -> None:
    key = _key()
    urls = [server.url(f"/ok?{key}&n={i}") for i in range(30)]
    urls[3] = server.url(f"/flaky/{key}/1")
    urls[17] = server.url(f"/status/404?{key}")
    result = afetch_cli(
        "-c", "2", "--ordered", "--retries", "0", "--confirm", "--confirm-delay", "0.1",
        stdin="".join(u + "\n" for u in urls),
    )  # fmt: skip
    records = jsonl(result.stdout)
    assert [r["url"] for r in records] == urls
    assert [r["confirmed"] for r in records if r["confirmed"] is not None] == [False, True]


def test_a_url_confirmed_is_asked_once_more_after_its_retries() -> None:
    with LoopbackServer() as server:
        urls = [server.url(f"/status/503?n={i}") for i in range(5)]
        records = collect(urls, retries=1, backoff=0.0, confirm=True, confirm_delay=0.0)
        # Two tries (one retry), then the confirming one, which has no retries of its own.
        assert {r.url: (r.attempts, r.confirmed) for r in by_url(records).values()} == {
            url: (3, True) for url in urls
        }
        assert server.stats.by_path["/status/503"] == 15


@pytest.mark.parametrize("ordered", [False, True])
def test_a_stopped_run_still_gives_the_held_failures_as_they_ended(server, ordered) -> None:
    """Every input line yields its record: a failure held for confirming, when the run is
    stopped during the pause, is given as it first ended (confirmed null)."""

    async def run() -> list[afetch.Record]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        urls = [server.url(f"/status/500?{_key()}"), server.url(f"/ok?{_key()}")]
        options = {"retries": 0, "confirm": True, "confirm_delay": 60.0, "ordered": ordered}
        return [r async for r in afetch.fetch(urls, stop=stop, **options)]

    started = time.monotonic()
    records = asyncio.run(run())
    assert time.monotonic() - started < 30
    assert sorted((r.status, r.confirmed) for r in records) == [(200, None), (500, None)]


def test_the_confirming_try_comes_exactly_the_pause_after_the_end() -> None:
    clock = FakeClock()
    seen: Counter[str] = Counter()

    def respond(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] += 1
        return httpx.Response(503 if seen[str(request.url)] <= 2 else 200)

    server = Recorder(clock, respond)
    urls = ["http://t.test/a", "http://t.test/b"]
    options = {"retries": 1, "backoff": 0.0, "confirm": True, "confirm_delay": 5.0}
    records = collect_on(clock, urls, transport=server.transport(), **options)
    assert server.times("http://t.test/a") == [0.0, 0.0, 5.0]  # two tries, then the pause
    assert [(r.status, r.attempts, r.confirmed) for r in records] == [(200, 3, False)] * 2


def test_a_status_accepted_by_accept_is_not_tried_again(server) -> None:
    """--confirm asks the run's one rule for ok: a 429 that --accept makes ok is no failure."""
    key = _key()
    accepted, failing = server.url(f"/status/429?{key}"), server.url(f"/status/503?{key}")
    args = ("--retries", "0", "--confirm", "--confirm-delay", "0", "--accept", "200-299,429")
    result = afetch_cli(*args, stdin=f"{accepted}\n{failing}\n")
    records = {r["url"]: r for r in jsonl(result.stdout)}
    assert (records[accepted]["ok"], records[accepted]["confirmed"]) == (True, None)
    assert records[accepted]["attempts"] == 1
    assert server.stats.by_path["/status/429"] == 1
    assert (records[failing]["ok"], records[failing]["confirmed"]) == (False, True)
    assert result.returncode == 1


def test_an_ok_if_that_fails_a_200_gets_it_confirmed(server) -> None:
    """--ok-if decides ok for --confirm too (evaluated by its jq worker, off the event loop): a
    200 it fails is tried once more and confirmed; one it passes is not tried again."""
    key = _key()
    failed, passed = server.url(f"/ok?size=10&{key}"), server.url(f"/ok?size=100&{key}")
    args = ("--retries", "0", "--confirm", "--confirm-delay", "0", "--ok-if", ".bytes > 50")
    result = afetch_cli(*args, stdin=f"{failed}\n{passed}\n")
    records = {r["url"]: r for r in jsonl(result.stdout)}
    assert (records[failed]["status"], records[failed]["ok"]) == (200, False)
    assert (records[failed]["attempts"], records[failed]["confirmed"]) == (2, True)
    assert (records[passed]["ok"], records[passed]["attempts"]) == (True, 1)
    assert records[passed]["confirmed"] is None
    assert result.returncode == 1, result.stderr


def test_the_confirming_try_is_judged_by_ok_if_too(server) -> None:
    """``confirmed`` says what the exit code judges: a 503, then a 200 that --ok-if still fails
    (a body too short) is confirmed, not a blip; a 200 it passes is one."""
    key = _key()
    short, long = server.url(f"/flaky/{key}/1"), server.url(f"/flaky/{key}-long/1")  # 503, 200
    expression = '.status == 200 and (.url | endswith("-long/1") or .bytes > 50)'
    args = ("--retries", "0", "--confirm", "--confirm-delay", "0", "--ok-if", expression)
    result = afetch_cli(*args, stdin=f"{short}\n{long}\n")
    records = {r["url"]: r for r in jsonl(result.stdout)}
    assert (records[short]["status"], records[short]["ok"], records[short]["confirmed"]) == (
        200,
        False,
        True,
    )
    assert (records[long]["status"], records[long]["ok"], records[long]["confirmed"]) == (
        200,
        True,
        False,
    )
    assert result.returncode == 1, result.stderr
