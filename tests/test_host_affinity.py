"""Host affinity (schedule.affinity): the slot an attempt frees goes to its host's next waiting
URL, so a shuffled list over more hosts than the engine keeps idle connections for still reuses
each host's connection; per-host limits, --ordered, retries and fairness still hold.

Connections are counted by the servers themselves (LoopbackServer.stats.connections)."""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import datetime

import pytest

from afetch._loopback import LoopbackServer
from afetch._record import Record
from afetch.schedule import affinity
from afetch.schedule.hosts import Host
from afetch.schedule.job import Job
from tests.fake_clock import FakeClock, SlowServer, collect_on
from tests.helpers import fetch_on, loopback_servers

#: More hosts than the engine's pool holds at -c 2 (4 × 2 connections), each several times.
HOSTS = 16
PER_HOST = 6
CONCURRENCY = 2


@pytest.fixture(scope="module")
def servers() -> Iterator[list[LoopbackServer]]:
    with loopback_servers(HOSTS) as started:
        yield started


def shuffled(servers: list[LoopbackServer], path: str = "/ok?size=1&n={n}") -> list[str]:
    urls = [one.url(path.format(n=n)) for n in range(PER_HOST) for one in servers]
    random.Random(22).shuffle(urls)
    return urls


def fetch_all(urls: list[str], engine: str = "curl", **options: object) -> list[Record]:
    options.setdefault("concurrency", CONCURRENCY)
    return fetch_on(urls, engine, **options)


def opened(servers: list[LoopbackServer], before: int) -> int:
    return sum(one.stats.connections for one in servers) - before


@pytest.mark.parametrize("engine", ["curl", "httpx"])
@pytest.mark.parametrize("per_host", [None, 1])
def test_a_shuffled_list_reuses_each_hosts_connection(
    servers: list[LoopbackServer], engine: str, per_host: int | None
) -> None:
    # Taken in input order (or hosts in turn, with --per-host), a host's next URL comes about
    # 16 URLs later, its idle connection evicted by then: about one connection per URL (96).
    # Its freed slot taking its next URL instead: a connection or two per host.
    before = opened(servers, 0)
    urls = shuffled(servers)
    records = fetch_all(urls, engine, per_host=per_host)
    assert sorted(record.url for record in records) == sorted(urls)
    assert all(record.ok for record in records)
    count = opened(servers, before)
    assert count <= 2 * HOSTS + CONCURRENCY, f"{count} connections for {len(urls)} URLs"


def test_ordered_output_keeps_input_order_while_hosts_keep_their_slots(
    servers: list[LoopbackServer],
) -> None:
    urls = shuffled(servers, "/ok?size=1&ordered={n}")
    records = fetch_all(urls, ordered=True)
    assert [record.url for record in records] == urls
    assert all(record.ok for record in records)


def test_retried_urls_taken_out_of_turn_get_one_record_each(
    servers: list[LoopbackServer],
) -> None:
    # Every URL fails once (503), sleeps, and is queued again: URLs started out of turn are
    # queued a second time while their first places are still in the queue.
    k = uuid.uuid4().hex
    urls = shuffled(servers, f"/flaky/{k}-{{n}}/1")
    records = fetch_all(urls, retries=1, backoff=0.0)
    assert sorted(record.url for record in records) == sorted(urls)
    assert [record.attempts for record in records] == [2] * len(urls)
    assert all(record.ok for record in records)


def test_per_host_limits_hold_when_a_freed_slot_follows_its_host() -> None:
    clock = FakeClock()
    server = SlowServer(clock, lambda request: 0.3)
    urls = [f"http://h{host}.test/{n}" for n in range(8) for host in range(5)]
    random.Random(1).shuffle(urls)
    records = collect_on(clock, urls, transport=server.transport(), concurrency=4, per_host=2)
    assert len(records) == len(urls)
    assert max(server.peak.values()) == 2
    assert server.peak_all == 4


def test_a_url_waits_for_at_most_lookahead_urls_of_a_busy_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One slot, and host a's URLs all around b's one: a's freed slot takes a's next URL, but
    # only among those read fewer than `lookahead` (10) URLs after b's; then b's turn comes.
    monkeypatch.setattr(affinity, "LOOKAHEAD_MIN", 10)
    clock = FakeClock()
    server = SlowServer(clock, lambda request: 0.1)
    urls = ["http://a.test/0", "http://b.test/0"] + [f"http://a.test/{n}" for n in range(1, 40)]
    records = collect_on(clock, urls, transport=server.transport(), concurrency=1)
    done = [record.url for record in records]
    assert sorted(done) == sorted(urls)
    # a/0 ends with a/1..a/9 (read at 2..10, fewer than 10 after b/0 at 1) waiting: they go
    # first, then b/0, whose turn it is; without that bound b/0 would come last.
    assert done.index("http://b.test/0") == 10


def test_places_of_urls_started_out_of_turn_are_dropped_from_the_queue() -> None:
    # Hosts a and b alternate in the list, one attempt of each in flight. b's is slow: a's
    # attempts end one after another, each taking a's next URL out of turn (past b's older
    # ones), whose places stay in the queue; as b's attempts end, its URLs come to the front
    # and those places go with them.
    shared = Host(None)
    started: list[Job] = []
    line = affinity.Affinity(1000, queue=shared.queue, ready=deque(), start=started.append)
    jobs = [Job(f"http://{'ab'[n % 2]}.test/{n}", shared, n) for n in range(200)]
    for job in jobs:
        line.add(job, affinity.host_of(job.url))  # type: ignore[arg-type]
        shared.queue.append(job)
    a, b = line.take(shared.queue.popleft()), line.take(shared.queue.popleft())
    assert (a, b) == (jobs[0], jobs[1])
    for _ in range(99):
        line.ended(a, paced=False, held=False, answered=True)  # type: ignore[arg-type]
        a = started[-1]
    assert [job.index for job in started] == list(range(2, 200, 2))
    assert len(shared.queue) == 99 + 98  # b's, and the places of a/4 to a/198
    line.ended(a, paced=False, held=False, answered=True)  # a's last: nothing left to take
    lengths = []
    for _ in range(99):
        line.ended(b, paced=False, held=False, answered=True)  # type: ignore[arg-type]
        b = started[-1]
        lengths.append(len(shared.queue))
    assert [job.index for job in started[99:]] == list(range(3, 200, 2))
    assert lengths == [196, *range(194, -1, -2)]
    assert all(job.stale == 0 for job in jobs)


def test_a_host_that_never_answers_has_its_urls_tried_side_by_side(
    servers: list[LoopbackServer],
) -> None:
    # Its attempts end without a response (the deadline), leaving no connection to reuse: its
    # next URL neither waits for the slot one frees while other hosts' URLs could be passed
    # over to it, nor takes that slot. Its four URLs start together, not 0.5 s apart.
    hanging = LoopbackServer()
    hanging.start()
    try:
        # Three slots busy for 0.3 s, the first of its URLs in the fourth; then one more URL
        # of each other host, 0.3 s each, to be passed over to.
        others = [one.url(f"/sleep/300?beside-hang={n}") for n, one in enumerate(servers)]
        urls = [*others[:3], *(hanging.url(f"/hang?n={n}") for n in range(4)), *others[3:]]
        records = fetch_all(urls, concurrency=4, timeout=0.5, retries=0)
    finally:
        hanging.stop()
    assert sorted(record.url for record in records) == sorted(urls)
    hung = [record for record in records if "/hang" in record.url]
    assert len(hung) == 4
    assert not any(record.ok for record in hung)
    starts = sorted(datetime.fromisoformat(record.started_at) for record in hung)
    span = (starts[-1] - starts[0]).total_seconds()
    assert span < 0.75, f"the silent host's URLs started over {span:.2f} s, one after another"


def _read_before_the_second_request(urls: list[str]) -> int:
    """How many of ``urls`` the run had read when its second request started (one slot, the
    first request taking a second): what the look-ahead let wait."""
    read: list[str] = []
    seen_at_second: list[int] = []

    def source() -> Iterator[str]:
        for url in urls:
            read.append(url)
            yield url

    def delay(request: object) -> float:
        if len(seen_at_second) < 2:
            seen_at_second.append(len(read))
        return 1.0

    clock = FakeClock()
    server = SlowServer(clock, delay)
    records = collect_on(clock, source(), transport=server.transport(), concurrency=1)
    assert len(records) == len(urls)
    return seen_at_second[1]


def test_a_list_over_many_hosts_widens_the_look_ahead_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(affinity, "LOOKAHEAD_MIN", 20)
    monkeypatch.setattr(affinity, "LOOKAHEAD_WIDE", 60)
    monkeypatch.setattr(affinity, "WIDEN_HOSTS_MIN", 5)  # 20 // 4 = 5 hosts waiting: widen
    many = [f"http://h{n}.test/x" for n in range(100)]
    one = [f"http://h.test/{n}" for n in range(100)]
    assert 55 <= _read_before_the_second_request(many) <= 62
    assert _read_before_the_second_request(one) <= 22
