"""Proxies through a real HTTP/SOCKS proxy (pproxy) on 127.0.0.1: the environment as curl reads
it, --proxy and --noproxy, tunnels for https, the error type ``proxy``, proxy credentials kept
out of records and stderr, Proxy-Authorization for the proxy only, and --no-private behind a
proxy. The proxy's log says where it connected: the proof a request went through it."""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from afetch import Record, _api
from afetch._errors import classify
from afetch._loopback import LoopbackServer
from afetch._settings import Settings
from afetch.attempt.fetcher import Fetcher
from afetch.engine.guard import AddressCheck
from afetch.engine.httpx_adapter import HttpxEngine
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import collect
from tests.proxies import ProxyServer

pytest.importorskip("pproxy")

CREDENTIALS = "ann:Pr0xy-S3cret"
PROXY_AUTHORIZATION = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyServer]:
    with ProxyServer() as running:
        yield running


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[ProxyServer]:
    with ProxyServer(auth=CREDENTIALS) as running:
        yield running


@pytest.fixture(scope="module")
def other_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopbackServer, Path]]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_path = tmp_path_factory.mktemp("proxy-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "public.test").configure_cert(context)
    with LoopbackServer(ssl=context) as running:
        yield running, ca_path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one(url: str, **options: object) -> Record:
    options.setdefault("retries", 0)
    (record,) = collect([url], **options)
    return record


def error_type(record: Record) -> str | None:
    return None if record.error is None else record.error.type


def target(server: LoopbackServer) -> str:
    return f"127.0.0.1:{server.port}"


def through(proxy: ProxyServer, action: object) -> list[str]:
    """Where the proxy connected while ``action()`` ran."""
    before = len(proxy.log)
    action()  # type: ignore[operator]
    return proxy.connections(since=before)


# --- the environment, as curl reads it ------------------------------------------------------


def test_http_proxy_from_the_environment(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url())
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(server.url("/ok"))))
    assert records[0].ok, records
    assert seen == [target(server)]


def test_new_handles_take_the_proxy_options_their_engine_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Looking for eight proxy variables cost each new easy handle ~24 µs (an encode and a
    # KeyError each): 12 ms of the first 500 requests at -c 500, which go out one after
    # another. The engine reads the environment once, when it is made.
    import asyncio
    import os

    from afetch.engine.curl import CurlEngine
    from afetch.engine.curl.transfer import _Transfer

    class Watched(dict[str, str]):
        def __init__(self, environ: dict[str, str]) -> None:
            super().__init__(environ)
            self.looked_up: list[str] = []

        def __contains__(self, name: object) -> bool:
            self.looked_up.append(str(name))
            return super().__contains__(name)

    async def run() -> list[str]:
        engine = CurlEngine(Settings())
        try:
            watched = Watched(dict(os.environ))
            monkeypatch.setattr(os, "environ", watched)
            for _ in range(3):
                _Transfer(engine).curl.close()
            return watched.looked_up
        finally:
            monkeypatch.undo()
            await engine.aclose()

    assert asyncio.run(run()) == []


def test_upper_case_http_proxy_is_ignored_as_curl_does(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpoxy: a CGI program gets the request's "Proxy:" header as HTTP_PROXY; curl (and so
    # afetch) never reads the upper-case name. An unreachable proxy there changes nothing.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    assert one(server.url("/ok")).ok


@pytest.mark.parametrize("name", ["ALL_PROXY", "all_proxy"])
def test_all_proxy_in_either_case(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, proxy.url("socks5"))
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(server.url("/ok"))))
    assert records[0].ok, records
    assert seen == [target(server)]
    assert proxy.log[-1].startswith("socks5 ")


def test_lower_case_wins(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("all_proxy", proxy.url())
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "example.invalid")
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(server.url("/ok"))))
    assert records[0].ok, records
    assert seen == [target(server)]


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy"])
def test_https_goes_through_a_connect_tunnel(
    tls: tuple[LoopbackServer, Path],
    proxy: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    server, ca_path = tls
    monkeypatch.setenv(name, proxy.url())
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")  # not for https
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(server.url("/ok"), cacert=str(ca_path))))
    assert records[0].ok, records
    # pproxy logs a CONNECT as "http": the tunnel went to the server, TLS inside it (the
    # certificate of 127.0.0.1 was verified end to end).
    assert seen == [target(server)]


def test_faults_behind_a_tunnel_keep_their_types(
    tls: tuple[LoopbackServer, Path], proxy: ProxyServer
) -> None:
    # The proxy's "200 Connection established" is not the server's head: a reset before the
    # server answers is still a reset, a truncated body still a protocol error.
    server, ca_path = tls
    records = collect(
        [server.url("/reset"), server.url("/truncate"), server.url("/status/404")],
        proxy=proxy.url(),
        cacert=str(ca_path),
        retries=0,
        ordered=True,
    )
    assert [(error_type(r), r.status) for r in records] == [
        ("reset", None),
        ("protocol", 200),
        (None, 404),
    ]


def test_http_proxy_does_not_apply_to_https(
    tls: tuple[LoopbackServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_path = tls
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    assert one(server.url("/ok"), cacert=str(ca_path)).ok


@pytest.mark.parametrize(
    ("no_proxy", "proxied"),
    [
        ("127.0.0.1", False),  # an IP address
        ("127.0.0.0/8", False),  # a CIDR range
        ("10.0.0.0/8, 127.0.0.0/24", False),  # a list, with spaces
        ("*", False),  # everything
        ("127.0.0.2", True),
        ("10.0.0.0/8", True),
        ("example.org", True),
    ],
)
def test_no_proxy_forms(
    server: LoopbackServer,
    proxy: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
    proxied: bool,
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url())
    monkeypatch.setenv("no_proxy", no_proxy)
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(server.url("/ok"))))
    assert records[0].ok, records
    assert seen == ([target(server)] if proxied else [])


def test_no_proxy_matches_host_suffixes(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libcurl resolves *.localhost to loopback itself (the proxy's resolver does not).
    url = server.url("/ok").replace("127.0.0.1", "a.b.localhost")
    monkeypatch.setenv("http_proxy", proxy.url())
    for no_proxy in ("localhost", ".localhost", "b.localhost"):  # all match a.b.localhost
        monkeypatch.setenv("no_proxy", no_proxy)
        assert one(url).ok, no_proxy
    monkeypatch.setenv("no_proxy", "b.localhost.org, other.localhost")
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(url)))
    assert seen == [f"a.b.localhost:{server.port}"]  # the proxy got the name: it resolves


# --- --proxy and --noproxy ------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h", "socks4"])
def test_proxy_option_overrides_the_environment(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("no_proxy", "*")  # --proxy with no --noproxy: no_proxy still applies...
    records: list[Record] = []
    seen = through(
        proxy, lambda: records.append(one(server.url("/ok"), proxy=proxy.url(scheme), noproxy=""))
    )
    assert records[0].ok, records
    assert seen == [target(server)]  # ...so --noproxy "" lifted it
    assert proxy.log[-1].startswith(f"{scheme.rstrip('h')} ")


def test_proxy_option_keeps_no_proxy_from_the_environment(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # curl's rule: -x replaces the proxy, not the exceptions.
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    seen = through(proxy, lambda: one(server.url("/ok"), proxy=proxy.url()))
    assert seen == []


def test_socks5h_lets_the_proxy_resolve(server: LoopbackServer, proxy: ProxyServer) -> None:
    url = server.url("/ok").replace("127.0.0.1", "localhost")
    seen = through(proxy, lambda: one(url, proxy=proxy.url("socks5h")))
    assert seen == [f"localhost:{server.port}"]  # the name, not an address
    seen = through(proxy, lambda: one(url, proxy=proxy.url("socks5")))
    assert len(seen) == 1
    assert seen[0] != f"localhost:{server.port}"  # resolved here first


def test_empty_proxy_disables_the_environment(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    assert error_type(one(server.url("/ok"))) == "proxy"
    assert one(server.url("/ok"), proxy="").ok


@pytest.mark.parametrize(("noproxy", "proxied"), [("127.0.0.0/8", False), ("other.test", True)])
def test_noproxy_option_overrides_no_proxy(
    server: LoopbackServer,
    proxy: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
    noproxy: str,
    proxied: bool,
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url())
    monkeypatch.setenv("no_proxy", "*")
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(server.url("/ok"), noproxy=noproxy)))
    assert records[0].ok, records
    assert seen == ([target(server)] if proxied else [])


def test_cli_proxy_and_noproxy(server: LoopbackServer, proxy: ProxyServer) -> None:
    before = len(proxy.log)
    done = afetch_cli(
        "-q", "--retries", "0", "-x", proxy.url("socks5h"), "-", stdin=server.url("/ok")
    )
    assert done.returncode == 0, done.stderr
    assert jsonl(done.stdout)[0]["ok"] is True
    assert len(proxy.log) == before + 1
    done = afetch_cli(
        "-q",
        "--noproxy",
        "127.0.0.1",
        "-",
        stdin=server.url("/ok"),
        env={"AFETCH_PROXY": proxy.url()},
    )
    assert done.returncode == 0, done.stderr
    assert len(proxy.log) == before + 1  # AFETCH_PROXY was read, and --noproxy bypassed it


def test_a_bad_proxy_scheme_is_a_usage_error_without_the_password() -> None:
    done = afetch_cli("-x", "ftp://ann:Pr0xy-S3cret@127.0.0.1:21", "-", stdin="http://127.0.0.1/")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "proxy scheme 'ftp'" in done.stderr
    assert "S3cret" not in done.stderr


# --- error type proxy -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks5h"])
def test_an_unreachable_proxy_is_error_type_proxy_and_not_retried(
    server: LoopbackServer, scheme: str
) -> None:
    record = one(server.url("/ok"), proxy=f"{scheme}://127.0.0.1:{closed_port()}", retries=2)
    assert error_type(record) == "proxy", record
    assert record.attempts == 1
    assert record.status is None


def test_an_unreachable_proxy_for_https(tls: tuple[LoopbackServer, Path]) -> None:
    server, ca_path = tls
    record = one(server.url("/ok"), proxy=f"http://127.0.0.1:{closed_port()}", cacert=str(ca_path))
    assert error_type(record) == "proxy", record


def test_a_proxy_name_that_does_not_resolve(server: LoopbackServer) -> None:
    record = one(server.url("/ok"), proxy="http://proxy.invalid:3128")
    assert error_type(record) == "proxy", record


def test_a_refused_connection_without_a_proxy_stays_connect() -> None:
    assert error_type(one(f"http://127.0.0.1:{closed_port()}/")) == "connect"


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_a_proxy_demanding_credentials_is_error_type_proxy(
    server: LoopbackServer, auth_proxy: ProxyServer, scheme: str
) -> None:
    record = one(server.url("/ok"), proxy=auth_proxy.url(scheme))
    assert error_type(record) == "proxy", record
    assert record.status is None  # the 407 was the proxy's, not the server's


def test_a_tunnel_refused_with_407_is_error_type_proxy(
    tls: tuple[LoopbackServer, Path], auth_proxy: ProxyServer
) -> None:
    server, ca_path = tls
    record = one(server.url("/ok"), proxy=auth_proxy.url(), cacert=str(ca_path))
    assert error_type(record) == "proxy", record
    assert "407" in record.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_credentials_in_the_proxy_url(
    server: LoopbackServer, auth_proxy: ProxyServer, scheme: str
) -> None:
    record = one(server.url("/ok"), proxy=auth_proxy.url(scheme, userinfo=CREDENTIALS))
    assert record.ok, record


def test_credentials_in_the_environment(
    tls: tuple[LoopbackServer, Path], auth_proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_path = tls
    monkeypatch.setenv("https_proxy", auth_proxy.url(userinfo=CREDENTIALS))
    assert one(server.url("/ok"), cacert=str(ca_path)).ok


# --- proxy credentials are never shown ------------------------------------------------------


def test_proxy_credentials_never_reach_records_or_stderr(server: LoopbackServer) -> None:
    dead = closed_port()
    urls = "\n".join([server.url("/ok"), f"https://127.0.0.1:{server.port}/"])
    # Each run is a subprocess (seconds on a busy machine): two cover the three ways in.
    for args, env in [
        (("-x", f"http://{CREDENTIALS}@127.0.0.1:{dead}"), {}),
        (
            (),
            {
                "http_proxy": f"socks5h://{CREDENTIALS}@127.0.0.1:{dead}",
                "https_proxy": f"http://{CREDENTIALS}@127.0.0.1:{dead}",
            },
        ),
    ]:
        done = afetch_cli("--retries", "0", "--no-progress", *args, "-", stdin=urls, env=env)
        records = jsonl(done.stdout)
        assert [r["error"]["type"] for r in records] == ["proxy", "proxy"], records
        assert "S3cret" not in done.stdout + done.stderr
        assert "Pr0xy" not in done.stdout + done.stderr


def test_messages_quoting_a_proxy_password_are_masked() -> None:
    settings = Settings(proxy=f"http://ann:{quote('p@ss/w0rd!', safe='')}@10.9.8.7:3128")
    fetcher = Fetcher(
        HttpxEngine(httpx.MockTransport(lambda r: httpx.Response(200)), settings), settings
    )
    said = ValueError("proxy http://ann:p@ss/w0rd!@10.9.8.7:3128 said p%40ss%2Fw0rd%21")
    message = classify(said, fetcher._secrets_for("http://h/")).message
    assert "w0rd" not in message
    assert message.count("***") == 2


# --- Proxy-Authorization: the proxy's, never a server's -------------------------------------


def test_proxy_authorization_header_survives_a_cross_origin_redirect(
    server: LoopbackServer, other_server: LoopbackServer, auth_proxy: ProxyServer
) -> None:
    final = other_server.url("/headers")
    url = server.url(f"/redirect-to?url={quote(final, safe='')}")
    record = one(
        url, proxy=auth_proxy.url(), headers=(("Proxy-Authorization", PROXY_AUTHORIZATION),)
    )
    # Stripped at the redirect, the next request would have met a 407.
    assert (record.ok, record.final_url, record.redirects) == (True, final, 1), record
    assert "proxy-authorization" not in other_server.stats.last_headers


def test_proxy_authorization_header_never_enters_a_tunnel(
    tls: tuple[LoopbackServer, Path], auth_proxy: ProxyServer
) -> None:
    server, ca_path = tls
    record = one(
        server.url("/headers"),
        proxy=auth_proxy.url(),
        headers=(("Proxy-Authorization", PROXY_AUTHORIZATION), ("X-Kept", "yes")),
        cacert=str(ca_path),
    )
    assert record.ok, record  # the proxy got it with the CONNECT...
    seen = server.stats.last_headers
    assert seen["x-kept"] == "yes"
    assert "proxy-authorization" not in seen  # ...and the server inside the tunnel did not


def test_proxy_authorization_is_not_sent_to_a_server_without_a_proxy(
    server: LoopbackServer,
) -> None:
    record = one(server.url("/headers"), headers=(("Proxy-Authorization", PROXY_AUTHORIZATION),))
    assert record.ok
    assert "proxy-authorization" not in server.stats.last_headers


def test_the_httpx_adapter_never_sends_proxy_authorization() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    headers = (("Proxy-Authorization", PROXY_AUTHORIZATION), ("X-Kept", "yes"))
    (record,) = collect(["http://h.test/"], transport=httpx.MockTransport(handler), headers=headers)
    assert record.ok
    assert "proxy-authorization" not in sent[0].headers
    assert sent[0].headers["x-kept"] == "yes"


# --- --no-private behind a proxy ------------------------------------------------------------


def _public_test(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-private with a test world: public.test resolves to 127.0.0.1, which counts as
    public on the server's port only; private.test resolves to 10.0.0.1."""
    answers = {"public.test": ["127.0.0.1"], "private.test": ["10.0.0.1"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    def policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return port == server.port and address.is_loopback

    monkeypatch.setattr(
        _api, "AddressCheck", lambda **_: AddressCheck(policy=policy, resolve=resolve)
    )


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_no_private_sends_the_proxy_to_the_checked_address(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    _public_test(server, monkeypatch)
    url = f"http://public.test:{server.port}/headers"
    records: list[Record] = []
    seen = through(
        proxy, lambda: records.append(one(url, proxy=proxy.url(scheme), no_private=True))
    )
    assert records[0].ok, records
    # Neither the HTTP proxy (a CONNECT tunnel, even for http://) nor socks5h got the name to
    # resolve: they were told the address afetch checked. The server still saw the name.
    assert seen == [target(server)]
    assert server.stats.last_headers["host"] == f"public.test:{server.port}"


def test_no_private_blocks_before_the_proxy_is_asked(
    server: LoopbackServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _public_test(server, monkeypatch)
    records: list[Record] = []
    seen = through(
        proxy,
        lambda: records.extend(
            collect(
                ["http://private.test/", f"http://127.0.0.1:{server.port + 1}/"],
                proxy=proxy.url(),
                no_private=True,
                retries=0,
            )
        ),
    )
    assert [error_type(r) for r in records] == ["blocked", "blocked"]
    assert seen == []


def test_no_private_redirect_through_a_proxy_is_checked_too(
    server: LoopbackServer,
    other_server: LoopbackServer,
    proxy: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _public_test(server, monkeypatch)
    url = f"http://public.test:{server.port}/redirect-to?url=" + quote(
        other_server.url("/ok"), safe=""
    )
    records: list[Record] = []
    seen = through(proxy, lambda: records.append(one(url, proxy=proxy.url(), no_private=True)))
    assert error_type(records[0]) == "blocked", records
    assert seen == [target(server)]  # the redirect never reached the proxy
