"""--http3 against a real HTTP/3 server on 127.0.0.1: hypercorn with aioquic (QUIC over UDP) and
TCP on the same port number, a trustme certificate. libcurl's QUIC runs on UDP sockets through
the same socket callback as TCP: these tests are what shows the event-loop integration serves
them (many transfers at once, backpressure on a large body, the fallback to TCP)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pycurl
import pytest

from tests.cli_run import afetch_cli, jsonl
from tests.helpers import collect
from tests.hypercorn_server import text_app, tls_hypercorn

pytest.importorskip("aioquic")
if not pycurl.version_info()[4] & pycurl.VERSION_HTTP3:
    pytest.skip("this libcurl has no HTTP/3", allow_module_level=True)

BIG = 3 << 20  # larger than the engine's 1 MiB buffer: the transfer pauses and resumes


# /big: a body large enough to need flow control; any other path answers its HTTP version.
_BIG_BODY = bytes(range(256)) * (BIG // 256)
_app = functools.partial(text_app, bodies={"/big": _BIG_BODY})


@pytest.fixture(scope="module")
def h3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with tls_hypercorn(_app, tmp_path_factory.mktemp("h3"), quic=True) as running:
        yield running


@pytest.fixture(scope="module")
def tcp_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with tls_hypercorn(_app, tmp_path_factory.mktemp("tcp"), quic=False) as running:
        yield running


def test_http3_against_a_real_h3_server(h3_server: tuple[str, Path]) -> None:
    base, ca_path = h3_server
    (record,) = collect([f"{base}/"], http3=True, cacert=str(ca_path), retries=0)
    assert (record.status, record.error, record.http_version) == (200, None, "HTTP/3")
    assert record.bytes == len(b"3")  # the server's own word: it spoke HTTP/3


def test_without_http3_the_same_server_gets_tcp(h3_server: tuple[str, Path]) -> None:
    base, ca_path = h3_server
    (record,) = collect([f"{base}/"], cacert=str(ca_path), retries=0)
    assert (record.ok, record.http_version) == (True, "HTTP/1.1")


def test_many_transfers_at_once_over_quic(h3_server: tuple[str, Path]) -> None:
    base, ca_path = h3_server
    urls = [f"{base}/?n={i}" for i in range(40)]
    records = collect(urls, http3=True, cacert=str(ca_path), concurrency=8, retries=0)
    assert len(records) == 40
    assert {(r.status, r.http_version, r.bytes) for r in records} == {(200, "HTTP/3", 1)}


def test_a_large_body_over_quic_is_complete(h3_server: tuple[str, Path]) -> None:
    # Read piece by piece (--hash): the 1 MiB buffer fills, libcurl pauses the QUIC stream and
    # resumes it as the pieces are taken; the digest proves every byte arrived, in order.
    base, ca_path = h3_server
    (record,) = collect(
        [f"{base}/big"], http3=True, cacert=str(ca_path), hash_bodies=True, retries=0
    )
    assert (record.status, record.error, record.http_version) == (200, None, "HTTP/3")
    assert record.bytes == BIG
    assert record.sha256 == hashlib.sha256(_BIG_BODY).hexdigest()


def test_http3_falls_back_to_tcp(tcp_only_server: tuple[str, Path]) -> None:
    # Nothing answers QUIC on that port: as curl --http3, the request goes over TCP instead.
    base, ca_path = tcp_only_server
    (record,) = collect([f"{base}/"], http3=True, cacert=str(ca_path), retries=0, timeout=10)
    assert record.ok, record
    assert record.http_version in ("HTTP/2", "HTTP/1.1")


def test_http3_certificates_are_verified(h3_server: tuple[str, Path]) -> None:
    base, _ = h3_server
    (record,) = collect([f"{base}/"], http3=True, retries=0)
    assert record.error is not None
    assert record.error.type == "tls"


def test_cli_http3(h3_server: tuple[str, Path]) -> None:
    base, ca_path = h3_server
    done = afetch_cli("--http3", "--cacert", str(ca_path), "-q", "-", stdin=f"{base}/\n")
    assert done.returncode == 0, done.stderr
    assert jsonl(done.stdout)[0]["http_version"] == "HTTP/3"


def test_http3_with_an_address_pinned_by_no_private(
    h3_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --no-private pins the checked address with CURLOPT_CONNECT_TO: QUIC honours it too.
    import ipaddress

    from afetch import _api
    from afetch.engine.guard import AddressCheck

    base, ca_path = h3_server
    port = int(base.rsplit(":", 1)[1])

    async def resolve(host: str, to_port: int) -> list[str]:
        return ["127.0.0.1"]

    def policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, to_port: int) -> bool:
        return to_port == port and address.is_loopback

    monkeypatch.setattr(
        _api, "AddressCheck", lambda **_: AddressCheck(policy=policy, resolve=resolve)
    )
    # Connected to 127.0.0.1, verified as h3.test (the certificate names both).
    url = f"https://h3.test:{port}/"
    (record,) = collect([url], http3=True, no_private=True, cacert=str(ca_path), retries=0)
    assert (record.status, record.error, record.http_version) == (200, None, "HTTP/3")


def test_http3_through_a_proxy_falls_back_to_tcp(h3_server: tuple[str, Path]) -> None:
    # A proxy that cannot carry QUIC: --http3 falls back to TCP through it, as curl --http3.
    pytest.importorskip("pproxy")
    from tests.proxies import ProxyServer

    base, ca_path = h3_server
    with ProxyServer() as proxy:
        (record,) = collect(
            [f"{base}/"], http3=True, cacert=str(ca_path), proxy=proxy.url(), retries=0
        )
        assert (record.status, record.error, record.http_version) == (200, None, "HTTP/2")
        # libcurl 8.23 first asks an HTTP proxy for a CONNECT-UDP (MASQUE) tunnel; pproxy has
        # none (404), so the request took a CONNECT tunnel to the server over TCP.
        assert proxy.connections()[-1] == base.removeprefix("https://"), proxy.log
