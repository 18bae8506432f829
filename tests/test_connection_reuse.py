"""Connection reuse: idle connections survive beyond ``-c`` (within the open-files limit), so a
list that comes back to a host reuses its connection; --no-private still checks every request.

Counted by the servers themselves (LoopbackServer.stats.connections), on both engines."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
from collections.abc import Iterator

import pytest

from afetch import _api
from afetch._loopback import LoopbackServer
from afetch._record import Record
from afetch._settings import Settings
from afetch.engine.connections import PER_SLOT, fitting
from afetch.engine.guard import AddressCheck
from tests.cli_run import cli_env, jsonl
from tests.helpers import fetch_on, loopback_servers

resource = pytest.importorskip("resource")

HOSTS = 6
CONCURRENCY = 2


@pytest.fixture(scope="module")
def servers() -> Iterator[list[LoopbackServer]]:
    with loopback_servers(HOSTS) as started:
        yield started


def fetch_all(urls: list[str], engine: str, concurrency: int) -> list[Record]:
    return fetch_on(urls, engine, concurrency=concurrency)


def connections(servers: list[LoopbackServer]) -> int:
    return sum(one.stats.connections for one in servers)


@pytest.mark.parametrize("engine", ["curl", "httpx"])
def test_one_host_at_c_k_opens_about_k_connections(
    servers: list[LoopbackServer], engine: str
) -> None:
    server = servers[0]
    before = server.stats.connections
    records = fetch_all([server.url(f"/ok?n={n}") for n in range(60)], engine, 4)
    assert all(record.ok for record in records)
    assert server.stats.connections - before <= 4 + 1


@pytest.mark.parametrize("engine", ["curl", "httpx"])
def test_a_list_going_round_many_hosts_reuses_their_connections(
    servers: list[LoopbackServer], engine: str
) -> None:
    # Host after host, ten rounds: with a pool of -c (2) connections every URL closed the idle
    # connection of a host met two URLs before and opened one (60 connections for 60 URLs).
    # A pool of 4 × -c keeps one idle connection for each of the 6 hosts.
    before = connections(servers)
    urls = [one.url(f"/ok?round={n}") for n in range(10) for one in servers]
    records = fetch_all(urls, engine, CONCURRENCY)
    assert all(record.ok for record in records)
    opened = connections(servers) - before
    assert opened <= 2 * HOSTS, f"{opened} connections for {len(urls)} URLs"


def test_idle_connections_stay_within_the_open_files_limit(tmp_path) -> None:
    # A hard limit with room for -c 30's requests (2 x 30 + 43 = 103 descriptors, run/fdlimit.py)
    # and hardly more, and a list going round 100 hosts: a pool of 4 x -c regardless holds 100
    # sockets and fails URLs with "Too many open files"; the pool shrinks to fit instead.
    hosts = [LoopbackServer(host=f"127.0.0.{n}") for n in range(2, 102)]
    for one in hosts:
        one.start()
    try:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(one.url(f"/ok?n={n}\n") for n in range(2) for one in hosts))

        def limited() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (106, 106))

        done = subprocess.run(
            [sys.executable, "-m", "afetch", str(urls), "-c", "30", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            preexec_fn=limited,
        )
    finally:
        for one in hosts:
            one.stop()
    records = jsonl(done.stdout)
    assert len(records) == 2 * len(hosts)
    assert [(r["url"], r["error"]) for r in records if not r["ok"]] == []
    assert done.returncode == 0, done.stderr


def test_the_pool_fits_the_descriptors_left() -> None:
    assert fitting(50, soft=100_000, open_now=30, per_request=2) == PER_SLOT * 50
    # 20 descriptors spare after 50 requests holding 2 each: 20 idle connections.
    assert fitting(50, soft=150, open_now=30, per_request=2) == 70
    # None spare: the requests' own connections only, never fewer.
    assert fitting(50, soft=100, open_now=30, per_request=2) == 50


def test_a_name_re_resolving_to_a_private_address_is_refused_despite_an_idle_connection(
    servers: list[LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --no-private: the first request to rebind.test leaves a connection (pinned to the
    # checked address) idle in libcurl's pool; the name then resolves to a refused address.
    # The second request is refused before it is sent: neither the pool nor libcurl's DNS
    # cache gets a say.
    server = servers[1]
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    def policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return str(address) == "127.0.0.1"

    monkeypatch.setattr(
        _api, "AddressCheck", lambda **_: AddressCheck(policy=policy, resolve=rebinding)
    )
    server.stats.reset()
    urls = [f"http://rebind.test:{server.port}/ok?n={n}" for n in range(2)]

    async def run() -> list[Record]:
        import afetch

        return [r async for r in afetch.fetch(urls, concurrency=1, no_private=True)]

    first, second = asyncio.run(run())
    assert first.ok, first
    assert second.error is not None, second
    assert second.error.type == "blocked"
    assert "127.0.0.2" in second.error.message
    assert server.stats.requests == 1


def test_tls_sessions_shared_across_handles_where_libcurl_needs_a_share(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libcurl before 8.12 gets a share handle for TLS sessions (8.12 and later share them in
    # the multi handle): forced here, HTTPS through it works on every handle, and the
    # connections are still reused.
    import ssl

    from afetch.engine.curl import engine as curl_engine

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    monkeypatch.setattr(curl_engine, "_SHARE_SESSIONS", True)
    with LoopbackServer(ssl=context) as server:

        async def run() -> list[Record]:
            import afetch

            urls = [server.url(f"/ok?n={n}") for n in range(12)]
            settings = Settings(concurrency=3, cacert=str(ca_path))
            return [r async for r in afetch.fetch(urls, settings=settings)]

        records = asyncio.run(run())
        assert all(record.ok for record in records), records
        assert server.stats.connections <= 3 + 1
