"""Requests with methods and bodies (-X, -d, --json) and JSON Lines request objects.

Against the loopback server's /echo route (method, headers and body back as JSON), through the
default libcurl engine and through the httpx adapter; the CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import afetch
from afetch import Record
from afetch._loopback import LoopbackServer
from afetch._record import OPTIONAL_KEYS, SCHEMA_KEYS
from afetch._settings import Settings
from afetch._spec import SHOWN, RequestSpec, parse_request, request_key
from afetch.attempt.fetcher import Fetcher
from afetch.engine.base import Request
from afetch.engine.factory import open_engine
from afetch.input.reader import read_urls, url_from_line
from afetch.input.shard import Shard, only_shard
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import transfer

ENGINES = ["curl", "httpx"]


def fetch_all(items: Iterable[str | RequestSpec], engine: str, **options: Any) -> list[Record]:
    """Records in input order, through libcurl or through httpx's own transport."""

    async def run() -> list[Record]:
        transport = None if engine == "curl" else httpx.AsyncHTTPTransport()
        return [r async for r in afetch.fetch(items, transport=transport, ordered=True, **options)]

    return asyncio.run(run())


def echo_of(item: str | RequestSpec, engine: str, **options: Any) -> dict[str, Any]:
    """Send ``item`` (shaped by the fetcher as a run with ``options`` would) through an engine
    and return what /echo saw: method, headers, body."""

    async def run() -> dict[str, Any]:
        transport = None if engine == "curl" else httpx.AsyncHTTPTransport()
        settings = Settings(**options)
        engine_ = open_engine(settings, transport)
        fetcher = Fetcher(engine_, settings)
        try:
            spec = item if isinstance(item, RequestSpec) else RequestSpec(item)
            method, body, headers = fetcher._spec_shape(spec)
            from afetch._url import parse_url

            target = parse_url(spec.url)
            _, data = await transfer(engine_, Request(method, target.url, headers, body))
            return json.loads(data)
        finally:
            await engine_.aclose()
            if transport is not None:
                await transport.aclose()

    return asyncio.run(run())


# --- methods, bodies and headers on the wire -----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_reaches_the_server(server: LoopbackServer, engine: str, method: str) -> None:
    (record,) = fetch_all([RequestSpec(server.url("/echo"), method)], engine)
    assert record.ok, record
    assert record.method == method
    if method != "HEAD":
        assert record.bytes > 0
    server.stats.reset()
    fetch_all([RequestSpec(server.url("/echo"), method)], engine)
    assert server.stats.by_method == {(method, "/echo"): 1}


@pytest.mark.parametrize("engine", ENGINES)
def test_form_body_as_curl_d(server: LoopbackServer, engine: str) -> None:
    body = b"a=1&b=caf\xc3\xa9&nul=\x00end"
    seen = echo_of(server.url("/echo"), engine, body=body)
    assert seen["method"] == "POST"  # a body without -X is a POST, as curl -d
    assert seen["body"].encode("latin-1") == body  # every byte, a NUL included
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["headers"]["content-length"] == str(len(body))
    assert "expect" not in seen["headers"]


@pytest.mark.parametrize("engine", ENGINES)
def test_json_body_as_curl_json(server: LoopbackServer, engine: str) -> None:
    spec = parse_request(
        json.dumps({"url": server.url("/echo"), "method": "put", "json": {"k": ["v", 1, None]}})
    )
    seen = echo_of(spec, engine)
    assert seen["method"] == "PUT"
    assert json.loads(seen["body"].encode("latin-1")) == {"k": ["v", 1, None]}
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["accept"] == "application/json"


@pytest.mark.parametrize("engine", ENGINES)
def test_request_headers_replace_run_headers_of_the_same_name(
    server: LoopbackServer, engine: str
) -> None:
    spec = RequestSpec(
        server.url("/echo"),
        "POST",
        headers=(("X-Token", "line-token"), ("content-type", "text/plain")),
        body=b"hello",
    )
    seen = echo_of(spec, engine, headers=(("X-Token", "run-token"), ("X-Run", "yes")))
    assert seen["headers"]["x-token"] == "line-token"
    assert seen["headers"]["x-run"] == "yes"
    assert seen["headers"]["content-type"] == "text/plain"
    assert seen["body"] == "hello"


def test_no_expect_100_continue_for_a_large_body(fresh_stats: LoopbackServer) -> None:
    """libcurl would add ``Expect: 100-continue`` to a large body and wait for an answer."""
    body = b"x" * (3 << 20)
    (record,) = fetch_all([RequestSpec(fresh_stats.url("/headers"), "POST", body=body)], "curl")
    assert record.ok
    assert "expect" not in fresh_stats.stats.last_headers
    assert fresh_stats.stats.last_headers["content-length"] == str(len(body))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_reused_handle_switches_between_shapes(server: LoopbackServer, engine: str) -> None:
    """One connection (-c 1), requests of every shape in turn: no method or body leaks over."""
    url = server.url("/echo")
    items: list[str | RequestSpec] = [
        RequestSpec(url, "POST", body=b"one"),
        url,
        RequestSpec(url, "HEAD"),
        RequestSpec(url, "DELETE"),
        RequestSpec(url, "GET", body=b"get-with-body"),
        RequestSpec(url, "POST", body=b"two"),
        RequestSpec(url, "PATCH", body=b"three"),
    ]
    server.stats.reset()
    records = fetch_all(items, engine, concurrency=1)
    assert all(r.ok for r in records), records
    assert server.stats.by_method == {
        ("POST", "/echo"): 2,
        ("GET", "/echo"): 2,
        ("HEAD", "/echo"): 1,
        ("DELETE", "/echo"): 1,
        ("PATCH", "/echo"): 1,
    }
    # Bytes of the echo: a body makes the answer longer by its length.
    assert records[5].bytes - records[0].bytes == 0  # "one" and "two": same length


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("status", "method", "kept"), [(302, "GET", False), (307, "POST", True)])
def test_redirects_drop_or_keep_the_body(
    server: LoopbackServer, engine: str, status: int, method: str, kept: bool
) -> None:
    url = server.url(f"/redirect-to?url=/echo&status={status}")
    server.stats.reset()
    (record,) = fetch_all([RequestSpec(url, "POST", body=b"payload")], engine, save_dir=None)
    assert record.ok
    assert record.redirects == 1
    assert record.method == "POST"  # the request as asked, not the hop's
    assert server.stats.by_method[method, "/echo"] == 1
    headers = server.stats.last_headers
    assert ("content-type" in headers) is kept
    assert (headers.get("content-length") == "7") is kept


# --- records -----------------------------------------------------------------------------------


def test_a_plain_run_prints_the_same_keys_as_before(server: LoopbackServer) -> None:
    (record,) = fetch_all([server.url("/ok")], "curl")
    assert list(json.loads(record.to_json(()))) == list(SCHEMA_KEYS)


def test_method_and_meta_keys(server: LoopbackServer) -> None:
    url = server.url("/ok")
    meta = {"id": 7, "tags": ["a", None], "n": 1.5}
    plain, obj, with_meta = fetch_all([url, RequestSpec(url), RequestSpec(url, meta=meta)], "curl")
    assert "method" not in json.loads(plain.to_json(()))
    assert json.loads(obj.to_json(()))["method"] == "GET"  # a request object says its method
    assert json.loads(with_meta.to_json(()))["meta"] == meta
    assert list(json.loads(with_meta.to_json(())))[-2:] == ["method", "meta"]
    # With -X/-d/--json every record of the run has "method".
    (posted,) = fetch_all([url], "curl", method="PUT")
    assert json.loads(posted.to_json(("method",)))["method"] == "PUT"
    assert OPTIONAL_KEYS[OPTIONAL_KEYS.index("method") :][:2] == ("method", "meta")


def test_request_header_values_never_appear_in_records(server: LoopbackServer) -> None:
    urls = [server.url("/ok"), server.url("/garbage"), server.url("/reset"), "not a url"]
    specs = [RequestSpec(u, headers=(("X-Api-Key", "k3y-SECRET-31"),)) for u in urls]
    bad = f'{{"url": "{urls[0]}", "headers": {{"X-Bad": "SECRET-32\\r\\nX-Injected: 1"}}}}'
    specs.append(parse_request(bad))
    records = fetch_all(specs, "curl", timeout=5, retries=0)
    assert records[-1].error is not None
    assert records[-1].error.type == "invalid_input"
    text = "\n".join(r.to_json() for r in records[:-1])
    assert "SECRET" not in text
    assert "SECRET" not in (records[-1].error.message)


# --- retries of requests that are not idempotent -------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_post_is_not_retried_after_a_response_or_mid_flight(fresh_stats: LoopbackServer) -> None:
    server = fresh_stats
    items = [
        RequestSpec(server.url("/status/503"), "POST", body=b"x"),
        RequestSpec(server.url("/flaky/post/5"), "PATCH", body=b"x"),
        RequestSpec(server.url("/sleep/3000"), "POST", body=b"x"),
        RequestSpec(server.url("/reset"), "POST", body=b"x"),
        RequestSpec(server.url("/flaky/put/1"), "PUT", body=b"x"),  # idempotent: retried
    ]
    records = fetch_all(items, "curl", retries=3, backoff=0.01, timeout=0.5)
    assert [r.attempts for r in records] == [1, 1, 1, 1, 2]
    assert records[2].error is not None
    assert records[2].error.type == "timeout"
    assert server.stats.by_method["POST", "/status/503"] == 1
    assert server.stats.by_method["PATCH", "/flaky/post/5"] == 1
    assert server.stats.by_method["POST", "/sleep/3000"] == 1
    assert server.stats.by_method["POST", "/reset"] == 1
    assert server.stats.by_method["PUT", "/flaky/put/1"] == 2


def test_post_is_retried_when_the_connection_never_opened() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    (record,) = fetch_all([RequestSpec(url, "POST", body=b"x")], "curl", retries=2, backoff=0.01)
    assert record.error is not None
    assert record.error.type == "connect"
    assert record.attempts == 3


# --- request objects: parsing, keys --------------------------------------------------------------


def test_request_objects_parse_and_refuse() -> None:
    spec = parse_request(
        '{"url": " http://h/ ", "method": "Delete", "headers": {"A": "1"}, "meta": [1]}'
    )
    assert (spec.url, spec.method, spec.headers, spec.meta) == (
        "http://h/",
        "DELETE",
        (("A", "1"),),
        [1],
    )
    assert spec.invalid is None
    for line, reason in [
        ("{", "not valid JSON"),
        ("{}", '"url"'),
        ('{"url": "http://h/", "method": "BREW"}', '"method"'),
        ('{"url": "http://h/", "body": 1}', '"body"'),
        ('{"url": "http://h/", "body": "a", "json": 1}', "not both"),
        ('{"url": "http://h/", "headers": ["A: 1"]}', '"headers"'),
        ('{"url": "http://h/", "headers": {"A B": "1"}}', "header name"),
        ('{"url": "http://h/", "meta": NaN}', "NaN"),
        ('{"url": "http://h/", "meta": 1e999}', "out of range"),
        ('{"url": "http://h/", "meta": "\\ud800"}', "surrogate"),
        ('{"url": "http://h/", "method": "HEAD", "body": "x"}', "HEAD"),
        ('{"url": "http://h/", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}", "deeply"),
    ]:
        bad = parse_request(line)
        assert bad.invalid is not None
        assert reason in bad.invalid, (line[:80], bad.invalid)
        assert len(bad.url) <= SHOWN


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("data", 'did you mean "body"?'),
        ("payload", 'did you mean "body"?'),
        ("header", 'did you mean "headers"?'),
        ("hedaers", 'did you mean "headers"?'),
        ("mehtod", 'did you mean "method"?'),
        ("params", 'did you mean "url"? (the query string goes in the URL)'),
        ("id", 'your own data goes in "meta"'),
        ("zzz", "the keys are url, method, headers, body, json, meta"),
    ],
)
def test_an_unknown_key_is_invalid_input_with_a_hint(key: str, hint: str) -> None:
    # It used to be ignored: {"method": "PUT", "data": "k=v"} went out with no body, ok: true.
    line = json.dumps({"url": "http://h/", "method": "PUT", key: "k=s3cret"})
    bad = parse_request(line)
    assert bad.invalid == f'invalid request object: unknown key "{key}"' + (
        f"; {hint}" if hint.startswith("the keys") else f": {hint}"
    )
    assert "s3cret" not in bad.url  # an unknown key's value may be a secret: masked


def test_a_record_fed_back_is_a_request_for_its_url_method_and_meta() -> None:
    # With --include headers/body/json, a record's headers, body and json are the response's:
    # sending them back (content-length: 99 as a request header) would be wrong.
    record = {
        "url": "http://h/a",
        "final_url": "http://h/a",
        "status": 500,
        "ok": False,
        "method": "PUT",
        "meta": {"id": 9},
        "headers": {"content-length": "99"},
        "body": "<html>",
        "json": {"x": 1},
        "title": "t",
    }
    spec = parse_request(json.dumps(record))
    assert spec == RequestSpec("http://h/a", "PUT", meta={"id": 9})


@pytest.mark.parametrize(
    "line",
    [
        '{"url": 1, "headers": {"A": "s3cret-value"}}',
        '{"url": "x", "\\u0068eaders": {"A": "s3cret-value"',
        '{"url": "x", "headers": {"A": "s3cret-value\\r"}}',
        '{"url": "http://h/", "meta": "\\ud800", "headers": {"A": "s3cret-value"}}',
        '{"url": "http://h/", "headers": "s3cret-value"}',
        '{"url": "http://h/", "headers": {"A": "s3cret-value"}, "method": 1}',
    ],
)
def test_a_malformed_line_shows_no_header_value(line: str) -> None:
    """The record of a malformed line shows the line as its url, with header values masked."""
    bad = parse_request(line)
    assert bad.invalid is not None
    assert "s3cret" not in bad.url
    assert bad.url[:8] == line[:8]
    bad.url.encode("utf-8")  # writable as a record


def test_request_keys_for_shard_and_state() -> None:
    url = "http://127.0.0.1/a"
    assert request_key(url) == url
    assert request_key(RequestSpec(url)) == url  # a bare object is its URL
    keys = {
        request_key(RequestSpec(url, "POST", body=b"1")),
        request_key(RequestSpec(url, "POST", body=b"2")),
        request_key(RequestSpec(url, "PUT", body=b"1")),
        request_key(RequestSpec(url, "POST")),
    }
    assert len(keys) == 4
    assert request_key(RequestSpec(url, "POST", body=b"1", meta=1)) == request_key(
        RequestSpec(url, "POST", body=b"1", meta=2)
    )

    async def kept(shard: Shard) -> list[str | RequestSpec]:
        async def items():
            for n in range(50):
                yield RequestSpec(url, "POST", body=str(n).encode())

        return [item async for item in only_shard(items(), shard)]

    parts = [asyncio.run(kept(Shard(k, 3))) for k in range(3)]
    assert sum(len(p) for p in parts) == 50
    assert all(len(p) < 50 for p in parts)  # the body spreads one URL's requests


# --- property: any line yields exactly one record ------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
REQUEST_OBJECTS = st.dictionaries(
    st.sampled_from(["url", "method", "headers", "body", "json", "meta", "other"]) | st.text(),
    JSON_VALUES | st.sampled_from(["http://127.0.0.1:9/", "POST", "get", "HEAD", "BREW"]),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.text(max_size=60)
        | REQUEST_OBJECTS.map(json.dumps)
        | REQUEST_OBJECTS.map(lambda o: "{" + json.dumps(o)[1:-1][:30]),
        min_size=1,
        max_size=8,
    )
)
def test_any_line_yields_exactly_one_record(lines: list[str]) -> None:
    """Arbitrary text and arbitrary JSON objects: one record per non-blank, non-comment line,
    never a crash; afetch's record output stays valid JSON."""
    # Blank lines and comments yield nothing; each other line yields one item.
    physical = [part for line in lines for part in line.replace("\r", "\n").split("\n")]
    items = [item for part in physical if (item := url_from_line(part)) is not None]
    mock = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))

    async def run() -> list[Record]:
        return [r async for r in afetch.fetch(items, transport=mock, retries=0, timeout=5)]

    records = asyncio.run(run())
    assert len(records) == len(items)
    for record in records:
        assert json.loads(record.to_json())["url"] == record.url
        if isinstance(record.error, afetch.FetchError) and record.error.type == "invalid_input":
            assert len(record.url) <= SHOWN


def test_read_urls_mixes_plain_lines_and_objects(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text('http://127.0.0.1/a\n# c\n\n{"url": "http://127.0.0.1/b"}\n{bad\n')
    import os

    async def read() -> list[str | RequestSpec]:
        fd = os.open(path, os.O_RDONLY)
        return [item async for item in read_urls([fd])]

    plain, obj, bad = asyncio.run(read())
    assert plain == "http://127.0.0.1/a"  # a plain line stays a str: the hot path is unchanged
    assert isinstance(obj, RequestSpec)
    assert obj.url == "http://127.0.0.1/b"
    assert isinstance(bad, RequestSpec)
    assert bad.invalid is not None


# --- the command line ----------------------------------------------------------------------------


def test_cli_data_and_json_options(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.url("/echo")
    body_file = tmp_path / "body.txt"
    body_file.write_bytes(b"a=1\r\n&b=2\n")
    result = afetch_cli("-", "-d", f"@{body_file}", "-d", "c=3", "-q", stdin=url + "\n")
    (record,) = jsonl(result.stdout)
    assert result.returncode == 0, result.stderr
    assert record["method"] == "POST"
    server.stats.reset()
    result = afetch_cli("-", "--json", '{"x": 1}', "-X", "PATCH", "-q", stdin=url + "\n")
    (record,) = jsonl(result.stdout)
    assert record["method"] == "PATCH"
    assert server.stats.by_method == {("PATCH", "/echo"): 1}
    assert server.stats.last_headers["content-type"] == "application/json"
    assert server.stats.last_headers["content-length"] == "8"


def test_cli_data_from_stdin_and_file_errors(server: LoopbackServer, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/headers") + "\n")
    server.stats.reset()
    result = afetch_cli(str(urls), "-d", "@-", "-q", stdin="from=stdin\n")
    assert result.returncode == 0, result.stderr
    assert server.stats.last_headers["content-length"] == str(len("from=stdin"))
    for args, stdin, words in [
        (("-", "-d", "@-"), "http://127.0.0.1:9/\n", "stdin is the URL list"),
        ((str(urls), "-d", f"@{tmp_path / 'missing'}"), None, "cannot read"),
        ((str(urls), "--json", "@" + str(tmp_path)), None, "cannot read"),
        ((str(urls), "-X", "HEAD", "-d", "x"), None, "HEAD"),
        ((str(urls), "-d", "x", "--json", "1"), None, "not both"),
        ((str(urls), "-X", "BREW"), None, "BREW"),
    ]:
        result = afetch_cli(*args, stdin=stdin)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith("afetch: error:")
        assert words in result.stderr
        assert "Traceback" not in result.stderr


def test_cli_request_header_values_appear_nowhere(server: LoopbackServer) -> None:
    lines = [
        json.dumps({"url": server.url(path), "headers": {"Authorization": "Bearer tok-SECRET-41"}})
        for path in ("/ok", "/garbage", "/reset", "/hang")
    ]
    lines.append(json.dumps({"url": "not a url", "headers": {"X-Key": "key-SECRET-42"}}))
    lines.append(json.dumps({"url": server.url("/ok"), "headers": {"X-Key": "SECRET-43\n"}}))
    # Retried (their messages too), without the default's pauses of up to 1.5 s.
    pace = ("--timeout", "1", "--backoff", "0.01")
    result = afetch_cli("-", *pace, "--progress", stdin="\n".join(lines) + "\n")
    assert result.returncode == 1
    assert len(jsonl(result.stdout)) == len(lines)
    assert "SECRET" not in result.stdout
    assert "SECRET" not in result.stderr


def test_cli_csv_has_a_method_column_with_x(server: LoopbackServer) -> None:
    result = afetch_cli(
        "-", "-X", "DELETE", "--format", "csv", "-q", stdin=server.url("/ok") + "\n"
    )
    header, row = result.stdout.splitlines()
    assert header.endswith(",started_at,method")
    assert row.endswith(",DELETE")
    plain = afetch_cli("-", "--format", "csv", "-q", stdin=server.url("/ok") + "\n")
    assert plain.stdout.splitlines()[0].endswith(",started_at")


def test_cli_post_retries_against_a_counting_server(
    fresh_stats: LoopbackServer, tmp_path: Path
) -> None:
    server = fresh_stats
    lines = [
        json.dumps({"url": server.url("/status/503"), "method": "POST", "body": "a"}),
        json.dumps({"url": server.url("/sleep/3000"), "method": "POST", "body": "a"}),
        json.dumps({"url": f"http://127.0.0.1:{closed_port()}/", "method": "POST", "body": "a"}),
        server.url("/status/502"),  # a plain GET: retried
    ]
    args = ("-", "--retries", "2", "--backoff", "0.01", "--timeout", "0.5", "--ordered", "-q")
    result = afetch_cli(*args, stdin="\n".join(lines) + "\n")
    records = jsonl(result.stdout)
    assert [r["attempts"] for r in records] == [1, 1, 3, 3]
    assert [r.get("method") for r in records] == ["POST", "POST", "POST", None]
    assert server.stats.by_method["POST", "/status/503"] == 1
    assert server.stats.by_method["POST", "/sleep/3000"] == 1
    assert server.stats.by_method["GET", "/status/502"] == 3


def test_cli_refetch_the_failures_pipeline(fresh_stats: LoopbackServer, tmp_path: Path) -> None:
    """`jq -c 'select(.ok|not)' out.jsonl | afetch -`: records are valid input."""
    server = fresh_stats
    lines = [
        server.url("/ok"),
        server.url("/flaky/refetch-a/1?status=500"),  # 500: not retried, fails the first run
        json.dumps(
            {"url": server.url("/flaky/refetch-b/1?status=500"), "method": "PUT", "meta": {"id": 9}}
        ),
        '{"url": ',
    ]
    first = afetch_cli("-", "--ordered", "-q", stdin="\n".join(lines) + "\n")
    records = jsonl(first.stdout)
    assert first.returncode == 1
    assert [r["ok"] for r in records] == [True, False, False, False]
    assert records[3]["error"]["type"] == "invalid_input"
    failures = "".join(json.dumps(r) + "\n" for r in records if not r["ok"])
    second = afetch_cli("-", "--ordered", "-q", stdin=failures)
    again = jsonl(second.stdout)
    assert [r["url"] for r in again] == [r["url"] for r in records if not r["ok"]]
    assert [r["ok"] for r in again] == [True, True, False]
    assert again[1]["method"] == "PUT"
    assert again[1]["meta"] == {"id": 9}
    assert server.stats.by_method["PUT", "/flaky/refetch-b/1"] == 2
    # The malformed line's record is itself a request object whose url is the line: it stays
    # a failure (not an http URL), never a crash.
    assert again[2]["error"]["type"] == "invalid_url"


def test_cli_resume_keys_on_method_and_body(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.url("/echo")
    lines = [
        json.dumps({"url": url, "method": "POST", "body": "1"}),
        json.dumps({"url": url, "method": "POST", "body": "2"}),
        url,
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines[:2]) + "\n")
    state, out = tmp_path / "state", tmp_path / "out.jsonl"
    first = afetch_cli(str(source), "--state", str(state), "-o", str(out), "-q")
    assert first.returncode == 0, first.stderr
    assert len(state.read_text().splitlines()) == 3  # two keys, then the " finished" mark
    # As a run stopped before its end leaves it (a finished run's journal starts a new run).
    state.write_text(state.read_text().removesuffix(" finished\n"))
    source.write_text("\n".join(lines) + "\n")
    second = afetch_cli(str(source), "--state", str(state), "--resume", "-o", str(out), "-q")
    assert second.returncode == 0, second.stderr
    records = jsonl(out.read_bytes())
    assert len(records) == 3  # the two bodies once each, then the new plain line
    assert records[-1]["url"] == url
    assert "method" not in records[-1]
