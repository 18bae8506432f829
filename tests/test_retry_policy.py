"""Retry policy and host bookkeeping as pure units: no network."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afetch import FetchError, Record, Settings
from afetch._url import parse_url
from afetch.schedule.hosts import Host, HostTable, Pacer, _split_host_key, host_key, locate
from afetch.schedule.retry import RetryPolicy, parse_retry_after
from tests.fake_clock import FakeClock


def rec(status: int | None = None, error: str | None = None) -> Record:
    return Record(
        url="http://127.0.0.1/",
        status=status,
        error=None if error is None else FetchError(error, "x"),
    )


@pytest.mark.parametrize(
    ("record", "retry"),
    [
        (rec(429), True),
        (rec(502), True),
        (rec(503), True),
        (rec(504), True),
        (rec(500), False),
        (rec(404), False),
        (rec(408), False),
        (rec(200), False),
        (rec(error="connect"), True),
        (rec(error="timeout"), True),
        (rec(error="reset"), True),
        (rec(error="dns"), False),
        (rec(error="tls"), False),
        (rec(error="protocol"), False),
        (rec(error="invalid_url"), False),
        (rec(error="too_large"), False),
    ],
)
def test_what_is_retried(record: Record, retry: bool) -> None:
    assert RetryPolicy().should_retry(record, method="GET") is retry
    assert RetryPolicy().should_retry(record, method="HEAD") is retry


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize(
    "record",
    [rec(429), rec(503), rec(502), rec(error="timeout"), rec(error="reset"), rec(error="dns")],
)
def test_non_idempotent_methods_are_not_retried_once_the_request_may_have_gone(
    record: Record, method: str
) -> None:
    """After a response, a timeout or a reset the server may have acted on a POST already."""
    assert not RetryPolicy().should_retry(record, method=method)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_methods_are_retried_when_the_connection_never_opened(method: str) -> None:
    assert RetryPolicy().should_retry(rec(error="connect"), method=method)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(("record", "retry"), [(rec(503), True), (rec(error="timeout"), True)])
def test_idempotent_methods_with_bodies_are_retried_like_get(
    record: Record, retry: bool, method: str
) -> None:
    assert RetryPolicy().should_retry(record, method=method) is retry


def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff=0.5, max_wait=3.0, rng=random.Random(0))
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (30, 3.0), (500, 3.0)]:
        samples = [policy.backoff_for(retry) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # full jitter spans the whole range
        assert min(samples) < ceiling * 0.2


def test_wait_after_counts_attempts_against_retries() -> None:
    policy = RetryPolicy(retries=2, backoff=0.0)
    assert policy.wait_after(1) == 0.0
    assert policy.wait_after(2) == 0.0
    assert policy.wait_after(3) is None
    assert RetryPolicy(retries=0).wait_after(1) is None


def test_retry_after_is_honoured_or_ends_the_retries_when_too_long() -> None:
    policy = RetryPolicy(retries=5, backoff=0.0, max_wait=10.0)
    assert policy.wait_after(1, retry_after="7", status=429) == 7.0
    assert policy.wait_after(1, retry_after="7", status=503) == 7.0
    assert policy.wait_after(1, retry_after="11", status=429) is None
    # Only 429/503 give Retry-After a meaning here; elsewhere, and when unparsable: backoff.
    assert policy.wait_after(1, retry_after="7", status=502) == 0.0
    assert policy.wait_after(1, retry_after="later", status=429) == 0.0


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    for bad in ("", "-5", "1.5", "soon", "Mon, 99 Foo 2024 99:99:99 GMT"):
        assert parse_retry_after(bad, now=now) is None


def test_host_key_is_scheme_host_port() -> None:
    assert host_key("http://A.test/x") == ("http", "a.test", 80)
    assert host_key("http://a.test:80/y") == host_key("http://a.test/")
    assert host_key("https://a.test/") == ("https", "a.test", 443)
    assert host_key("http://a.test:8080/") != host_key("http://a.test/")
    assert host_key("not a url") is None
    assert host_key("http://[::1") is None


# URLs built from the pieces where urlsplit's reading has edges: scheme characters and case,
# users, brackets, colons, %-zones, blanks and controls (which urlsplit strips or drops),
# non-ASCII (NFKC-checked), ports out of range or empty, and what ends the authority. Mostly
# plain pieces, one odd one at most: the odd one must be where a usual URL would be.
_SCHEMES = st.sampled_from(["http", "HTTPS", "hTtP", "h-t.t+p1", "1http", "ht\ttp", " http", ""])
_SEPARATORS = st.sampled_from(["://", "://", "://", ":/", ":", "//"])
_PLAIN_HOSTS = st.text(st.sampled_from("aZ09.-_~!$&'()*+,;="), max_size=6)
_ODD = st.sampled_from(["", "", "@", "[", "]", "[::1]", ":", "%", "%eTh0", " ", "\t", "\n", "\x00"])
_ODD_MORE = st.sampled_from(["\x7f", "é", "É", "\ufb01", "\u2100", "\uff0f", "/", "?", "#"])
_PORTS = st.sampled_from(["", ":", ":0", ":80", ":443", ":08080", ":65535", ":65536", ":x"])
_TAILS = st.sampled_from(["", "/", "/p?q#f", "?q", "#f", " ", "\n", "\t/", ":/", "@h/"])


@settings(max_examples=2000, deadline=None)
@given(
    _SCHEMES,
    _SEPARATORS,
    _PLAIN_HOSTS,
    st.one_of(st.just(""), _ODD, _ODD_MORE),
    _PLAIN_HOSTS,
    _PORTS,
    _TAILS,
)
def test_host_key_reads_urls_as_urlsplit(
    scheme: str, sep: str, host: str, odd: str, more: str, port: str, tail: str
) -> None:
    url = scheme + sep + host + odd + more + port + tail
    assert host_key(url) == _split_host_key(url), url
    # The scheduler's one parse for the key and the attempt's target says the same.
    key, target = locate(url)
    assert key == _split_host_key(url), url
    assert target is None or target == parse_url(url), url


@pytest.mark.parametrize(
    "url", ["http://[1.2]/", "http://[::1]:8080/x", "http://a.test:0/", "http://a.test/a b"]
)
def test_locate_keys_as_host_key(url: str) -> None:
    # "[1.2]" fits the usual URL's pattern, but urlsplit (the key's reading) rejects it.
    key, target = locate(url)
    assert key == host_key(url) == _split_host_key(url)
    assert target is None or target == parse_url(url)


def test_pacer_spaces_starts_evenly() -> None:
    pacer = Pacer(rate=2.0)
    pacer.take(now=100.0)
    assert pacer.next_at == 100.5
    pacer.take(now=100.1)  # reserved ahead: the next slot moves on from the last one
    assert pacer.next_at == 101.0
    pacer.take(now=200.0)  # idle a while: no burst credit accumulates
    assert pacer.next_at == 200.5


def test_host_failures_are_consecutive_and_reset_by_any_response() -> None:
    host = Host(("http", "a", 80), tracked=True)
    for kind in ("connect", "timeout"):
        host.note(kind, max_errors=3)
    host.note(None, max_errors=3)  # an answer, even a 503, proves the host is there
    assert (host.failures, host.down) == (0, False)
    for kind in ("dns", "tls", "reset"):
        host.note(kind, max_errors=3)
    assert host.down
    untracked = Host(None)
    untracked.note("connect", max_errors=1)
    assert not untracked.down


def test_host_table_forgets_idle_hosts_but_remembers_failures_boundedly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("afetch.schedule.hosts.FAILURE_MEMORY", 2)
    table = HostTable(limit=1, rate=None, max_errors=2, now=lambda: 0.0)
    hosts = [table.get(host_key(f"http://h{i}.test/")) for i in range(4)]
    assert len(table) == 4
    for host in hosts:
        table.note(host, "connect")
        table.note(host, "connect")
        assert host.down
        table.release(host)
    assert len(table) == 0
    # The two most recent failures are remembered; the older ones are probed afresh.
    assert table.get(host_key("http://h3.test/")).down
    assert table.get(host_key("http://h2.test/")).down
    assert not table.get(host_key("http://h0.test/")).down


def test_host_table_keeps_a_paced_host_until_its_interval_passes() -> None:
    clock = FakeClock(0.0)
    table = HostTable(limit=None, rate=1.0, max_errors=None, now=clock.time)
    host = table.get(host_key("http://a.test/"))
    assert host.pacer is not None
    host.pacer.take(now=0.0)
    clock.now = 0.5  # (no timer to jump to: the table reads the clock only)
    table.release(host)
    assert len(table) == 1
    assert table.get(host_key("http://a.test/")) is host
    clock.now = 1.5
    table.release(host)
    assert len(table) == 0


def test_the_sweep_of_idle_hosts_never_takes_the_host_being_added() -> None:
    # A host is idle until its first URL is queued; the sweep that a new host can set off
    # (every time the table doubles) once dropped that very host, and the run crashed when
    # its attempt ended (KeyError: 20,000 URLs over 10,000 hosts with --per-host 2).
    table = HostTable(limit=2, rate=None, max_errors=None, now=lambda: 0.0)
    hosts = []
    for i in range(3000):
        host = table.get(host_key(f"http://h{i}.test/"))
        assert table.get(host_key(f"http://h{i}.test/x")) is host, f"host {i} was swept"
        host.in_flight += 1  # its attempt starts: every host stays in use
        hosts.append(host)
    assert len(table) == 3000
    for host in hosts:
        host.in_flight -= 1
        table.release(host)  # idle: forgotten, once each
    assert len(table) == 0


def test_invalid_urls_share_an_unbounded_pseudo_host() -> None:
    table = HostTable(limit=1, rate=1.0, max_errors=1, now=lambda: 0.0)
    nowhere = table.get(host_key("not a url"))
    assert nowhere is table.get(host_key("ftp//"))
    assert (nowhere.limit, nowhere.pacer, nowhere.tracked, len(table)) == (None, None, False, 0)


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"backoff": -0.1},
        {"backoff": float("nan")},
        {"max_retry_wait": -1.0},
        {"per_host": 0},
        {"rate": 0.0},
        {"host_rate": -1.0},
        {"rate": float("nan")},
        {"max_host_errors": 0},
    ],
)
def test_settings_refuse_bad_scheduling_values(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Settings(**options)
