"""--rate-limit-headers: a host's rate-limit fields pace it (afetch.schedule.ratelimit, Pacer)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from afetch._loopback import LoopbackServer
from afetch.schedule.hosts import UNSAID_RESET, Pacer
from afetch.schedule.ratelimit import EPOCH_FROM, EPOCH_MS_FROM, Quota, read_quota
from tests.cli_run import afetch_cli, jsonl
from tests.fake_clock import FakeClock, Recorder, collect_on
from tests.helpers import collect

NOW = 1_800_000_000.0
FIELD_NAMES = (
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)
#: Text made of what these fields are made of, so that the parser's edges get hit.
FIELD_TEXT = st.text(alphabet='0123456789-.;,="\\ rtqwlimnagsedfu\t', max_size=40) | st.text(
    max_size=20
)
COUNTS = st.integers(min_value=0, max_value=10**9)
SECONDS = st.integers(min_value=0, max_value=EPOCH_FROM - 1)


# -- the parser -----------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(FIELD_NAMES), FIELD_TEXT), max_size=6), FIELD_TEXT)
def test_any_fields_give_a_sane_quota_or_none(headers, retry_after) -> None:
    quota = read_quota(headers, retry_after, now=NOW)
    if quota is None:
        return
    assert quota.remaining is None or quota.remaining >= 0
    assert quota.reset is None or (quota.reset >= 0 and math.isfinite(quota.reset))
    assert quota.limit is None or quota.limit >= 1
    assert quota.window is None or quota.window > 0
    assert quota.remaining is not None or quota.limit is not None


@given(COUNTS, SECONDS, st.integers(1, 10**9), st.integers(1, 10**6), st.booleans())
def test_the_drafts_structured_fields_round_trip(remaining, reset, limit, window, token) -> None:
    name = "default" if token else '"default"'
    headers = [
        ("ratelimit", f"{name};r={remaining};t={reset}"),
        ("ratelimit-policy", f"{name};q={limit};w={window}"),
    ]
    assert read_quota(headers, None, now=NOW) == Quota(remaining, float(reset), limit, window)


@given(st.lists(st.tuples(COUNTS, SECONDS), min_size=1, max_size=5))
def test_of_several_policies_the_most_restrictive_counts(policies) -> None:
    field = ", ".join(f'"p{i}";r={r};t={t}' for i, (r, t) in enumerate(policies))
    quota = read_quota([("ratelimit", field)], None, now=NOW)
    assert quota is not None
    fewest = min(r for r, _ in policies)
    assert quota.remaining == fewest
    assert quota.reset == max(t for r, t in policies if r == fewest)


def test_the_draft_07_dictionary_form() -> None:
    headers = [("ratelimit", "limit=100, remaining=3, reset=20"), ("ratelimit-policy", "100;w=60")]
    assert read_quota(headers, None, now=NOW) == Quota(3, 20.0, 100, 60.0)


@pytest.mark.parametrize("prefix", ["ratelimit-", "x-ratelimit-", "x-rate-limit-"])
@given(reset=st.integers(0, 10**14))
def test_a_legacy_reset_is_a_wait_or_a_unix_time(prefix, reset) -> None:
    headers = [(prefix + "remaining", "0"), (prefix + "reset", str(reset))]
    quota = read_quota(headers, None, now=NOW)
    assert quota is not None
    assert quota.remaining == 0
    if reset < EPOCH_FROM:  # seconds to wait: below 2001-09-09 as a time, over 30 years as a wait
        expected = float(reset)
    elif reset < EPOCH_MS_FROM:  # GitHub's Unix time
        expected = max(0.0, reset - NOW)
    else:  # a Unix time in milliseconds
        expected = max(0.0, reset / 1000 - NOW)
    assert quota.reset == pytest.approx(expected)


def test_the_boundary_between_a_wait_and_a_unix_time() -> None:
    just_below = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", str(EPOCH_FROM - 1))]
    at = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", str(EPOCH_FROM))]
    assert read_quota(just_below, None, now=NOW).reset == EPOCH_FROM - 1
    assert read_quota(at, None, now=NOW).reset == 0.0  # a time long past: no wait


def test_the_draft_fields_win_over_the_older_ones() -> None:
    headers = [
        ("x-ratelimit-remaining", "50"),
        ("ratelimit-remaining", "40"),
        ("ratelimit", '"a";r=2;t=9'),
    ]
    assert read_quota(headers, None, now=NOW).remaining == 2
    assert read_quota(headers[:2], None, now=NOW).remaining == 40


def test_retry_after_means_none_remaining_until_then() -> None:
    assert read_quota(None, "12", now=NOW) == Quota(0, 12.0)
    fields = [("ratelimit", '"a";r=5;t=3')]
    assert read_quota(fields, "12", now=NOW) == Quota(0, 12.0)  # the longer wait holds
    assert read_quota(None, "soon", now=NOW) is None
    assert read_quota([("x-ratelimit-reset", "5")], None, now=NOW) is None  # says nothing left


# -- the pacer ------------------------------------------------------------------------------------


def test_a_host_gets_one_request_until_its_answer_says_what_it_allows() -> None:
    pacer = Pacer(rate=None, probe=True)
    assert pacer.next_at == 0.0
    pacer.take(now=0.0)
    assert pacer.next_at == math.inf  # nothing more until the answer
    pacer.heard(Quota(remaining=2, reset=10.0, limit=3, window=10.0), now=0.1, in_flight=0)
    pacer.take(now=0.1)
    assert pacer.next_at == 0.1
    pacer.take(now=0.1)
    assert pacer.next_at == pytest.approx(10.1)  # none left: until the reset
    # Then a new window: its whole quota, without asking first.
    for _ in range(2):
        pacer.take(now=10.2)
        assert pacer.next_at == 10.2
    pacer.take(now=10.2)
    assert pacer.next_at == pytest.approx(20.1)


def test_a_host_that_says_nothing_is_not_held_back() -> None:
    pacer = Pacer(rate=None, probe=True)
    pacer.take(now=0.0)
    pacer.heard(None, now=0.5, in_flight=0)
    assert (pacer.allowance, pacer.next_at) == (None, 0.5)
    for _ in range(100):
        pacer.take(now=1.0)
    assert pacer.next_at == 1.0


def test_a_probe_answered_with_a_policy_alone_does_not_hold_the_host() -> None:
    pacer = Pacer(rate=None, probe=True)
    pacer.take(now=0.0)
    pacer.heard(Quota(limit=100, window=60.0), now=0.2, in_flight=0)
    assert (pacer.allowance, pacer.next_at, pacer.limit) == (None, 0.2, 100)


def test_requests_in_flight_count_against_what_remains() -> None:
    pacer = Pacer(rate=None)
    pacer.heard(Quota(remaining=3, reset=5.0), now=0.0, in_flight=3)
    assert pacer.next_at == 5.0  # the 3 out may not have been counted yet


def test_a_stale_answer_does_not_give_back_what_a_later_one_took() -> None:
    pacer = Pacer(rate=None)
    pacer.heard(Quota(remaining=1, reset=5.0), now=0.0, in_flight=0)
    pacer.heard(Quota(remaining=4, reset=5.0), now=0.1, in_flight=0)  # sent earlier, came later
    assert pacer.allowance == 1


def test_none_remaining_without_a_reset_waits_a_little_then_asks_once() -> None:
    pacer = Pacer(rate=None)
    pacer.heard(Quota(remaining=0), now=0.0, in_flight=0)
    assert pacer.next_at == UNSAID_RESET
    pacer.take(now=UNSAID_RESET)
    assert pacer.next_at == math.inf  # one request, then its answer


# -- against a server that enforces its quota -------------------------------------------------


@pytest.mark.parametrize("style", ["draft", "legacy", "github"])
def test_the_cli_never_sends_more_than_the_fields_allow(style) -> None:
    with LoopbackServer() as server:
        urls = "".join(server.url(f"/quota/{style}/3/{i}?style={style}\n") for i in range(8))
        result = afetch_cli("--rate-limit-headers", "-c", "8", "--retries", "0", stdin=urls)
        assert result.returncode == 0, result.stderr
        records = jsonl(result.stdout)
        assert [r["status"] for r in records] == [200] * 8
        assert server.stats.quota_refused == 0
        # Without it the same list overruns the quota: the server does enforce it.
        again = urls.replace(f"/quota/{style}/", f"/quota/{style}-unpaced/")
        afetch_cli("-c", "8", "--retries", "0", stdin=again)
        assert server.stats.quota_refused > 0


def test_the_library_takes_the_same_knob() -> None:
    with LoopbackServer() as server:
        urls = [server.url(f"/quota/lib/2/{i}") for i in range(5)]
        records = collect(urls, concurrency=5, retries=0, rate_limit_headers=True)
        assert sorted(r.status for r in records) == [200] * 5
        assert server.stats.quota_refused == 0


def test_a_429s_retry_after_holds_the_whole_host() -> None:
    with LoopbackServer() as server:
        # The first URL is refused with Retry-After 1; the others wait for it with it.
        urls = [server.url("/retry-after/host/1?after=1")] + [server.url("/ok")] * 3
        records = collect(
            urls, concurrency=4, retries=1, rate_limit_headers=True, per_host=1, ordered=True
        )
        assert [r.status for r in records] == [200] * 4
        assert server.stats.requests == 5
        # The other URLs went after the pause, with the retry (not in the second after the 429).
        retried = datetime.fromisoformat(records[0].started_at)
        for record in records[1:]:
            assert datetime.fromisoformat(record.started_at) >= retried - timedelta(seconds=0.5)


# -- exact waits, on a fake clock -----------------------------------------------------------------


def _quota_server(clock: FakeClock, quota: int, window: float) -> Recorder:
    """Fixed windows from 0 on ``clock``: ``quota`` requests each, said in the draft's fields."""
    used: Counter[int] = Counter()

    def respond(request: httpx.Request) -> httpx.Response:
        now = clock.elapsed()
        index = int(now // window)
        used[index] += 1
        left = quota - used[index]
        fields = {
            "RateLimit-Policy": f'"d";q={quota};w={window:g}',
            "RateLimit": f'"d";r={max(0, left)};t={math.ceil((index + 1) * window - now)}',
        }
        return httpx.Response(200 if left >= 0 else 429, headers=fields)

    return Recorder(clock, respond)


def test_a_host_is_held_until_each_reset_and_given_its_quota_then() -> None:
    clock = FakeClock()
    server = _quota_server(clock, quota=2, window=10.0)
    urls = [f"http://t.test/{i}" for i in range(6)]
    records = collect_on(
        clock, urls, transport=server.transport(), concurrency=6, rate_limit_headers=True
    )
    assert [r.status for r in records] == [200] * 6
    # The probe, the one more the answer allowed; then the policy's 2 at each reset.
    assert sorted(at for _, at in server.starts) == [0.0, 0.0, 10.0, 10.0, 20.0, 20.0]


def test_a_reset_beyond_max_retry_wait_is_cut_to_it() -> None:
    clock = FakeClock()
    server = Recorder(clock, lambda _: httpx.Response(200, headers={"RateLimit": '"d";r=0;t=3600'}))
    urls = ["http://t.test/a", "http://t.test/b"]
    collect_on(clock, urls, transport=server.transport(), rate_limit_headers=True, max_retry_wait=7)
    assert [at for _, at in server.starts] == [0.0, 7.0]


def _simulate(quota: int, window: float, latencies: list[float], concurrency: int, policy: bool):
    """A client pacing by ``Pacer`` against a server of ``quota`` per fixed ``window`` (counting
    each request as it arrives, answering after its latency): (requests refused, finish time)."""
    pacer = Pacer(rate=None, probe=True)
    used: Counter[int] = Counter()
    answers: list[tuple[float, int, Quota, int]] = []  # (when, order, what it says, epoch)
    now, refused, in_flight, left, order = 0.0, 0, 0, list(latencies), 0
    while left or answers:
        while left and in_flight < concurrency and pacer.next_at <= now:
            pacer.take(now=now, in_flight=in_flight)
            index = int(now // window)
            used[index] += 1
            refused += used[index] > quota
            reset = math.ceil((index + 1) * window - now)
            said = Quota(
                max(0, quota - used[index]),
                float(reset),
                *((quota, window) if policy else (None, None)),
            )
            answers.append((now + left.pop(), order, said, pacer.epoch))
            order += 1
            in_flight += 1
        upcoming = [answer[0] for answer in answers]
        if left and in_flight < concurrency:
            upcoming.append(pacer.next_at)
        assert upcoming, "stuck: nothing will happen"
        assert min(upcoming) < math.inf, "stuck: waiting for an answer that will not come"
        now = max(now, min(upcoming))
        for answer in sorted(a for a in answers if a[0] <= now):
            answers.remove(answer)
            in_flight -= 1
            pacer.heard(answer[2], now=now, in_flight=in_flight, epoch=answer[3])
    return refused, now


@settings(max_examples=500, deadline=None)
@example(quota=1, window=2.0, latencies=[1.0, 2.0, 0.25, 3.5, 1.0], concurrency=2, policy=True)
@example(
    quota=2, window=10.0, latencies=[1.0, 1.0, 2.0, 1.0, 2.5, 1.0, 1.0], concurrency=3, policy=True
)
@given(
    quota=st.integers(1, 6),
    window=st.sampled_from([1.0, 2.0, 10.0]),
    latencies=st.lists(st.floats(0.001, 4.0), min_size=1, max_size=25),
    concurrency=st.integers(1, 10),
    policy=st.booleans(),
)
def test_a_paced_client_is_never_refused(quota, window, latencies, concurrency, policy) -> None:
    refused, _ = _simulate(quota, window, latencies, concurrency, policy)
    assert refused == 0
