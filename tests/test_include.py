"""--include: extra record keys, on both engines, over plain HTTP and TLS, and from the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from afetch import Record, Settings
from afetch._include import RECORD_KEYS as INCLUDE_KEYS
from afetch._loopback import LoopbackServer
from afetch._record import SCHEMA_KEYS
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import by_url, collect, transfer

ALL = ("headers", "timings", "remote", "tls", "body", "json", "title")


def _mock(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


# --- the record: additive keys in a fixed order ---------------------------------------------


def test_without_include_the_record_is_unchanged(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/page")])
    assert record.extra is None
    assert list(json.loads(record.to_json())) == [*SCHEMA_KEYS]


def test_included_keys_follow_the_schema_in_a_fixed_order(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/page")], include=("title", "headers", "body"))
    keys = list(record.to_dict())
    assert keys[: len(SCHEMA_KEYS)] == [*SCHEMA_KEYS]
    assert keys[len(SCHEMA_KEYS) :] == ["headers", "body", "body_truncated", "title"]
    assert keys[len(SCHEMA_KEYS) :] == [k for k in INCLUDE_KEYS if k in keys]


def test_include_names_are_checked() -> None:
    assert Settings(include="body, headers").include == ("headers", "body")
    with pytest.raises(ValueError, match="unknown --include key 'cookies'"):
        Settings(include=("cookies",))


def test_a_record_without_a_response_has_every_included_key_null() -> None:
    (record,) = collect(["not a url"], include=ALL)
    extra = record.to_dict(include=INCLUDE_KEYS)
    assert record.error is not None
    assert {key: extra[key] for key in INCLUDE_KEYS} == {
        **dict.fromkeys(INCLUDE_KEYS),
        "body_truncated": False,
    }


# --- headers, body, json, title (engine-neutral) --------------------------------------------


def test_headers_are_lower_case_and_repeats_are_joined() -> None:
    raw = [("X-Multi", "a"), ("Content-Type", "text/plain"), ("x-multi", "b")]
    (record,) = collect(
        ["http://127.0.0.1/"],
        transport=_mock(lambda request: httpx.Response(200, headers=raw, content=b"hi")),
        include=("headers",),
    )
    assert record.extra is not None
    assert record.extra["headers"] == {
        "x-multi": "a, b",
        "content-type": "text/plain",
        "content-length": "2",
    }


def test_body_is_cut_at_the_limit_but_counted_in_full() -> None:
    mock = _mock(lambda request: httpx.Response(200, content=b"a" * 5000))
    (record,) = collect(["http://127.0.0.1/"], transport=mock, include=("body",), body_limit=100)
    assert record.extra == {"body": "a" * 100, "body_truncated": True}
    assert record.bytes == 5000
    (whole,) = collect(["http://127.0.0.1/"], transport=mock, include=("body",))
    assert whole.extra == {"body": "a" * 5000, "body_truncated": False}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"a": [1, 2.5, null], "b": "\xc3\xa9"}', {"a": [1, 2.5, None], "b": "é"}),
        (b"[1, 2]", [1, 2]),
        (b"<html>not json</html>", None),
        (b"NaN", None),  # not JSON, and the record must stay valid JSON
        (b"", None),
    ],
)
def test_json_is_the_parsed_body_or_null(content: bytes, expected: object) -> None:
    mock = _mock(lambda request: httpx.Response(200, content=content))
    (record,) = collect(["http://127.0.0.1/"], transport=mock, include=("json",))
    assert record.extra == {"json": expected}
    json.loads(record.to_json())


def test_json_of_a_truncated_body_is_null() -> None:
    mock = _mock(lambda request: httpx.Response(200, json={"items": list(range(100))}))
    (record,) = collect(["http://127.0.0.1/"], transport=mock, include=("json",), body_limit=20)
    assert record.extra == {"json": None}


def test_body_charset_comes_from_content_type_else_utf8() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/latin":
            return httpx.Response(
                200,
                content="café".encode("latin-1"),
                headers={"Content-Type": "text/plain; charset=ISO-8859-1"},
            )
        return httpx.Response(200, content=b"caf\xc3\xa9 \xff")

    records = by_url(
        collect(
            ["http://127.0.0.1/latin", "http://127.0.0.1/bad"],
            transport=_mock(handler),
            include=("body",),
        )
    )
    assert records["http://127.0.0.1/latin"].extra == {"body": "café", "body_truncated": False}
    assert records["http://127.0.0.1/bad"].extra == {"body": "café \ufffd", "body_truncated": False}


def test_the_httpx_adapter_has_no_timings_remote_or_tls() -> None:
    mock = _mock(lambda request: httpx.Response(200, text="<title>x</title>"))
    (record,) = collect(["http://127.0.0.1/"], transport=mock, include=ALL)
    assert record.extra is not None
    assert (record.extra["timings"], record.extra["remote"], record.extra["tls"]) == (None,) * 3
    assert record.extra["title"] == "x"


# --- through libcurl against the loopback server --------------------------------------------


def test_title_body_and_headers_of_a_latin1_page(server: LoopbackServer) -> None:
    url = server.url("/page?title=Caf%C3%A9+%26amp%3B+cr%C3%A8me&charset=iso-8859-1")
    (record,) = collect([url], include=("headers", "body", "title"))
    assert record.extra is not None
    assert record.extra["title"] == "Café & crème"
    assert "<TITLE>" in record.extra["body"]
    assert "crème" in record.extra["body"]
    assert record.extra["headers"]["x-multi"] == "a, b"
    assert record.extra["headers"]["content-type"] == "text/html; charset=iso-8859-1"


def test_a_large_body_keeps_only_the_limit(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/ok?size=3000000")], include=("body",), body_limit=1000)
    assert record.bytes == 3_000_000
    assert record.extra == {"body": "x" * 1000, "body_truncated": True}


def test_json_from_the_server(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/headers")], include=("json",))
    assert record.extra is not None
    assert record.extra["json"]["accept"] == "*/*"


def test_head_has_no_body(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/page")], include=("body", "title"), method="HEAD")
    assert record.extra == {"body": None, "body_truncated": False, "title": None}


def test_timings_and_remote_over_http(server: LoopbackServer) -> None:
    urls = [server.url(f"/ok?n={n}") for n in range(3)]
    # One connection, reused: the first record made it, the others did not.
    records = by_url(collect(urls, concurrency=1, include=("timings", "remote")))
    first = records[urls[0]].extra
    assert first is not None
    timings = first["timings"]
    assert list(timings) == ["dns", "connect", "tls", "first_byte", "total"]
    assert timings["tls"] is None  # plain http
    assert 0 <= timings["dns"] <= timings["connect"] <= timings["first_byte"] <= timings["total"]
    assert timings["connect"] > 0
    assert first["remote"] == {"ip": "127.0.0.1", "port": server.port}
    for url in urls[1:]:
        extra = records[url].extra
        assert extra is not None
        assert (extra["timings"]["dns"], extra["timings"]["connect"]) == (0, 0)
        assert 0 < extra["timings"]["first_byte"] <= extra["timings"]["total"]


def test_headers_and_timings_describe_the_final_response(server: LoopbackServer) -> None:
    (record,) = collect([server.url("/redirect/2")], include=("headers", "timings"))
    assert record.redirects == 2
    assert record.extra is not None
    assert record.extra["headers"]["content-length"] == "1024"
    assert "location" not in record.extra["headers"]


def test_a_refused_connection_still_has_timings(closed_port: int) -> None:
    (record,) = collect(
        [f"http://127.0.0.1:{closed_port}/"], include=("timings", "remote", "tls"), retries=0
    )
    assert record.error is not None
    assert record.error.type == "connect"
    assert record.extra is not None
    assert record.extra["tls"] is None
    assert record.extra["timings"]["first_byte"] is None  # no response
    assert record.extra["remote"] is None  # connected to nothing


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- TLS -----------------------------------------------------------------------------------


class TlsSite:
    def __init__(self, server: LoopbackServer, ca_path: Path, not_after: datetime) -> None:
        self.server = server
        self.ca_path = ca_path
        self.not_after = not_after


def _tls_site(
    folder: Path, not_after: datetime, names: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> Iterator[TlsSite]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert(*names, not_after=not_after)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    with LoopbackServer(ssl=context) as server:
        yield TlsSite(server, ca_path, not_after.replace(microsecond=0))


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    # 10 days and an hour: days_left is 10 whatever the test's own duration.
    not_after = datetime.now(UTC) + timedelta(days=10, hours=1)
    yield from _tls_site(tmp_path_factory.mktemp("tls"), not_after)


@pytest.fixture(scope="module")
def expired_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    not_after = datetime.now(UTC) - timedelta(days=3, hours=1)
    yield from _tls_site(tmp_path_factory.mktemp("expired"), not_after)


@pytest.fixture(scope="module")
def other_name_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    not_after = datetime.now(UTC) + timedelta(days=30, hours=1)
    yield from _tls_site(tmp_path_factory.mktemp("other"), not_after, ("other.test",))


def _check_tls(
    tls: dict[str, Any],
    site: TlsSite,
    days_left: int,
    san: tuple[str, ...] = ("127.0.0.1", "localhost"),
) -> None:
    assert list(tls) == [
        "version",
        "cipher",
        "subject",
        "issuer",
        "san",
        "not_before",
        "not_after",
        "days_left",
    ]
    assert tls["version"].startswith("TLSv1.")
    assert tls["cipher"]
    assert "trustme" in tls["subject"]
    assert "Testing cert" in tls["subject"]
    assert "Testing CA" in tls["issuer"]
    assert tls["san"] == list(san)
    assert tls["not_after"] == site.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tls["not_before"].endswith("Z")
    assert tls["days_left"] == days_left


def test_tls_of_a_verified_certificate_and_of_reused_connections(tls_site: TlsSite) -> None:
    urls = [tls_site.server.url(f"/ok?n={n}") for n in range(4)]
    records = collect(urls, concurrency=2, include=("tls", "timings"), cacert=str(tls_site.ca_path))
    for record in records:
        assert (record.status, record.error) == (200, None)
        assert record.extra is not None
        _check_tls(record.extra["tls"], tls_site, days_left=10)
    handshakes = [r.extra["timings"]["tls"] for r in records if r.extra]
    assert any(ms > 0 for ms in handshakes)  # new connections
    assert 0 in handshakes  # and at least one reused one


def test_the_engine_collects_what_it_is_told_not_what_the_run_includes(tls_site: TlsSite) -> None:
    # The engine knows no --include key: afetch.fetch tells it what to collect (Collect).
    from afetch.engine.base import Collect, Request
    from afetch.engine.curl import CurlEngine

    async def tls_of(settings: Settings, collect: Collect | None) -> Any:
        engine = CurlEngine(settings, collect)
        try:
            response, _ = await transfer(engine, Request("GET", tls_site.server.url("/ok"), ()))
            return None if response.info is None else response.info.tls
        finally:
            await engine.aclose()

    told = Settings(cacert=str(tls_site.ca_path))
    _check_tls(asyncio.run(tls_of(told, Collect(tls=True))), tls_site, days_left=10)
    untold = Settings(cacert=str(tls_site.ca_path), include=("tls",))
    assert asyncio.run(tls_of(untold, None)) is None


def test_tls_is_present_when_verification_fails(tls_site: TlsSite) -> None:
    # No --cacert: the test CA is unknown, so verification fails (error tls), yet the record
    # says what certificate the server showed.
    (record,) = collect([tls_site.server.url("/ok")], include=("tls",))
    assert record.error is not None
    assert record.error.type == "tls"
    assert record.extra is not None
    _check_tls(record.extra["tls"], tls_site, days_left=10)


def test_an_expired_certificate_has_negative_days_left(expired_site: TlsSite) -> None:
    (record,) = collect(
        [expired_site.server.url("/ok")], include=("tls",), cacert=str(expired_site.ca_path)
    )
    assert record.error is not None
    assert record.error.type == "tls"
    assert record.extra is not None
    _check_tls(record.extra["tls"], expired_site, days_left=-4)


def test_tls_is_present_for_a_certificate_of_another_name(other_name_site: TlsSite) -> None:
    (record,) = collect(
        [other_name_site.server.url("/ok")], include=("tls",), cacert=str(other_name_site.ca_path)
    )
    assert record.error is not None
    assert record.error.type == "tls"
    assert record.extra is not None
    _check_tls(record.extra["tls"], other_name_site, days_left=30, san=("other.test",))


def test_tls_with_insecure_and_null_for_http(tls_site: TlsSite, server: LoopbackServer) -> None:
    records = by_url(
        collect([tls_site.server.url("/ok"), server.url("/ok")], include=("tls",), verify=False)
    )
    secure = records[tls_site.server.url("/ok")].extra
    assert secure is not None
    _check_tls(secure["tls"], tls_site, days_left=10)
    assert records[server.url("/ok")].extra == {"tls": None}


# --- the command line ------------------------------------------------------------------------


def test_cli_include_env_and_default_output(server: LoopbackServer) -> None:
    url = server.url("/page?title=Hello")
    plain = afetch_cli("-q", "-", stdin=url + "\n")
    assert plain.returncode == 0, plain.stderr
    assert list(jsonl(plain.stdout)[0]) == [*SCHEMA_KEYS]

    done = afetch_cli("-q", "--include", "title", "--include", "headers,remote", "-", stdin=url)
    assert done.returncode == 0, done.stderr
    (record,) = jsonl(done.stdout)
    assert list(record)[len(SCHEMA_KEYS) :] == ["headers", "remote", "title"]
    assert record["title"] == "Hello"
    assert record["remote"]["port"] == server.port

    env = afetch_cli("-q", "-", stdin=url, env={"AFETCH_INCLUDE": "json,title"})
    (record,) = jsonl(env.stdout)
    assert list(record)[len(SCHEMA_KEYS) :] == ["json", "title"]
    assert (record["json"], record["title"]) == (None, "Hello")


def test_cli_csv_puts_objects_in_their_column_as_json(server: LoopbackServer) -> None:
    done = afetch_cli(
        "-q", "--format", "csv", "--include", "headers,body,title", "-",
        stdin=server.url("/page?title=Hi") + "\n" + server.url("/headers") + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(rows[0])[-4:] == ["headers", "body", "body_truncated", "title"]
    page = next(row for row in rows if "page" in row["url"])
    assert json.loads(page["headers"])["x-multi"] == "a, b"
    assert (page["body_truncated"], page["title"]) == ("false", "Hi")
    assert page["body"].startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--include", "cookies"), "unknown --include key 'cookies'"),
        (("--include", "body", "--body-limit", "lots"), "--body-limit: expected a size"),
    ],
)
def test_cli_bad_include_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    done = afetch_cli(*args, "-", stdin="http://127.0.0.1:9/\n")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("afetch: error: ")
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_record_to_dict_fills_included_keys_the_record_lacks() -> None:
    record = Record(url="u", extra={"title": "T"})
    assert record.to_dict((), ("body", "body_truncated", "title"))["body_truncated"] is False
    assert record.to_dict()["title"] == "T"


def test_a_probe_handshake_shows_the_certificate_when_libcurl_kept_none(
    tls_site: TlsSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libcurl 8 with OpenSSL keeps the chain of a failed verification (tested above); where a
    # TLS library does not, one unverified handshake shows it. Simulate such a library.
    from afetch.engine.curl import CurlEngine

    monkeypatch.setattr(CurlEngine, "tls_details", lambda self, slot: None)
    (record,) = collect([tls_site.server.url("/ok")], include=("tls",))
    assert record.error is not None
    assert record.error.type == "tls"
    assert record.extra is not None
    _check_tls(record.extra["tls"], tls_site, days_left=10)


def test_the_probe_gives_nothing_without_a_tls_server(server: LoopbackServer) -> None:
    from afetch.engine.base import Request
    from afetch.engine.curl.setup import _tls_probe

    plain = server.url("/ok").replace("http://", "https://")
    # The plain server waits for a request head that a handshake never sends: the probe ends
    # at its timeout, whatever its length (5 s of nothing, before).
    assert _tls_probe(Request("GET", plain, ()), 0.5) is None


# --- what a hostile server sends must not end the run (review findings) --------------------


@pytest.mark.parametrize("name", ["base64", "hex", "zlib", "rot13", "unicode_escape", "utf-7"])
def test_a_charset_that_is_no_text_encoding_falls_back_to_utf8(name: str) -> None:
    from afetch._include import body_text, charset

    assert charset(f"text/html; charset={name}") == "utf-8"
    assert body_text(b"\\ud800 ok", f"text/plain; charset={name}") == "\\ud800 ok"


@pytest.mark.parametrize("body", [b"1e999", b'{"a": "\\ud800"}', b"[-1e400]"])
def test_json_that_a_record_cannot_carry_is_null(body: bytes) -> None:
    from afetch._include import json_value

    assert json_value(body) is None


def test_tls_with_a_body_key_is_read_when_the_transfer_ends(tls_site: TlsSite) -> None:
    """A body key asks the engine about every head, inside libcurl's callbacks, where pycurl
    refuses getinfo: the certificate is read when the transfer ends, and the record is whole."""
    (record,) = collect(
        [tls_site.server.url("/ok")], include=("tls", "title"), cacert=str(tls_site.ca_path)
    )
    assert (record.status, record.error) == (200, None)
    assert record.extra is not None
    _check_tls(record.extra["tls"], tls_site, days_left=10)
