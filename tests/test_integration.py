"""The core against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time

from afetch._loopback import LoopbackServer
from tests.helpers import by_url, collect


def test_statuses_bodies_and_metadata(server: LoopbackServer) -> None:
    urls = [server.url("/ok?size=3000"), server.url("/status/404"), server.url("/status/500")]
    records = by_url(collect(urls, concurrency=3))
    ok = records[urls[0]]
    assert (ok.status, ok.ok, ok.bytes, ok.http_version) == (200, True, 3000, "HTTP/1.1")
    assert ok.content_type == "text/plain"
    assert ok.started_at.endswith("Z")
    assert ok.elapsed_ms > 0
    assert (records[urls[1]].status, records[urls[1]].ok) == (404, False)
    assert (records[urls[2]].status, records[urls[2]].ok) == (500, False)
    assert all(r.error is None for r in records.values())


def test_redirect_chain_is_followed(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/redirect/3")])
    assert (record.status, record.redirects, record.ok) == (200, 3, True)
    assert record.final_url == server.url("/ok")
    assert record.bytes == 1024


def test_redirect_loop_ends_as_too_many_redirects(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/loop")], max_redirects=5)
    assert record.error is not None
    assert record.error.type == "too_many_redirects"
    assert record.redirects == 5


def test_connection_reset_is_an_error_record(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/reset")])
    assert record.error is not None
    assert record.error.type in {"reset", "protocol"}
    assert record.status is None
    assert not record.ok


def test_truncated_body_is_a_protocol_error(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/truncate")])
    assert record.error is not None
    assert record.error.type == "protocol"
    assert record.status == 200  # headers arrived; the body did not
    assert not record.ok


def test_a_server_that_never_answers_times_out(server: LoopbackServer) -> None:
    start = time.monotonic()
    (record,) = collect([server.url("/hang")], timeout=0.5, retries=0)  # one deadline, no more
    took = time.monotonic() - start
    assert record.error is not None
    assert record.error.type == "timeout"
    assert took < 5  # generous: the deadline is 0.5 s


def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        (record,) = collect([f"http://127.0.0.1:{port}/"])
    assert record.error is not None
    assert record.error.type == "connect"


def test_concurrency_bound_holds_server_side(fresh_stats: LoopbackServer) -> None:
    server = fresh_stats
    urls = [server.url(f"/sleep/40?i={i}") for i in range(60)]
    records = collect(urls, concurrency=5)
    assert len(records) == 60
    assert all(r.ok for r in records)
    assert server.stats.max_in_flight <= 5
    assert server.stats.max_in_flight >= 2  # and requests really did overlap


def test_mixed_list_yields_one_record_per_line(server: LoopbackServer) -> None:
    urls = [
        server.url("/ok"),
        server.url("/status/503"),
        server.url("/redirect/2"),
        server.url("/reset"),
        server.url("/garbage"),
        "definitely not a url",
        server.url("/ok"),  # duplicates are fetched and reported twice
    ]
    records = collect(urls, concurrency=4, timeout=5)
    assert sorted(r.url for r in records) == sorted(urls)
