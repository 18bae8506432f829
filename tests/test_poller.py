"""How the libcurl engine watches its sockets: an epoll of its own (a ``selectors`` poller where
there is no epoll), idle keep-alive connections parked, stale registrations told apart.

Against a real keep-alive server on 127.0.0.1 that counts connections and can close them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator

import pycurl
import pytest

from afetch._loopback import LoopbackServer
from afetch._settings import Settings
from afetch.engine.base import Request
from afetch.engine.curl import CurlEngine
from afetch.engine.curl import engine as _curl_engine
from afetch.engine.curl.poller import _IN, _OUT, _SelectorPoller
from tests.helpers import collect, transfer
from tests.test_transport import FAULTS


class _ThreadedServer:
    """A listener on loopback whose every connection is served by ``_serve`` in a thread."""

    def __init__(self, backlog: int = 128) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._accepted(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _accepted(self, conn: socket.socket) -> None:
        pass

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class KeepAliveServer(_ThreadedServer):
    """Answers every request on a connection with 200 "ok", keeps it open, counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        #: Seconds before each answer (0: at once).
        self.delay = 0.0
        self._open: list[socket.socket] = []
        super().__init__()

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._open.append(conn)

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        try:
            while data := conn.recv(65536):
                pending += data
                while b"\r\n\r\n" in pending:
                    _, pending = pending.split(b"\r\n\r\n", 1)
                    time.sleep(self.delay)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass  # closed by close_connections()

    def close_connections(self) -> None:
        """Close every connection from the server's side, as an idle timeout would."""
        with self._lock:
            for conn in self._open:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def close(self) -> None:
        self.close_connections()
        self._listener.close()


@pytest.fixture
def keep_alive() -> Iterator[KeepAliveServer]:
    server = KeepAliveServer()
    yield server
    server.close()


@pytest.fixture(params=["epoll", "selectors"])
def poller(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test on the platform's poller (epoll here) and on the ``selectors`` fallback."""
    if request.param == "selectors":
        monkeypatch.setattr(_curl_engine, "_new_poller", _SelectorPoller)
    return str(request.param)


async def _get(engine: CurlEngine, url: str) -> tuple[int, int]:
    response, body = await transfer(engine, Request("GET", url, ()))
    return response.status, len(body)


def test_an_idle_connection_is_reused_and_one_the_server_closed_is_replaced(
    keep_alive: KeepAliveServer, poller: str
) -> None:
    # Answers that take a moment: libcurl then waits for each with the socket's reader
    # registered, and parks it after. (An answer already there when libcurl reads right after
    # sending, as on a loaded machine, leaves nothing registered to park.)
    keep_alive.delay = 0.05

    async def run() -> None:
        engine = CurlEngine(Settings(concurrency=1))
        try:
            for _ in range(3):
                assert await _get(engine, keep_alive.url) == (200, 2)
            assert keep_alive.connections == 1
            # Between requests the connection idles in libcurl's pool: parked on epoll (its
            # reader kept), unregistered on the fallback. (libcurl's own eventfd parks too.)
            parked = {fd for fd in engine._idle if stat.S_ISSOCK(os.fstat(fd).st_mode)}
            assert len(parked) == (1 if poller == "epoll" else 0)
            keep_alive.close_connections()
            for _ in range(200):  # the loop sees the parked socket stir and drops it
                if not parked & engine._idle:
                    break
                await asyncio.sleep(0.01)
            assert not parked & (engine._idle | engine._watched.keys())
            assert await _get(engine, keep_alive.url) == (200, 2)
            assert keep_alive.connections == 2
        finally:
            await engine.aclose()

    asyncio.run(run())


@contextlib.contextmanager
def _parked_number_reused(engine: CurlEngine) -> Iterator[tuple[int, socket.socket]]:
    """Park a socket on ``engine``, close it without a word (as libcurl may evict an idle
    connection), and give its number to a new socket: yields the number and the new one's peer."""
    parked, parked_peer = socket.socketpair()
    new, new_peer = socket.socketpair()
    fd = parked.fileno()
    try:
        engine._on_socket(pycurl.POLL_IN, fd, None, None)
        engine._on_socket(pycurl.POLL_REMOVE, fd, None, None)
        assert fd in engine._idle  # parked, its reader kept
        parked.close()
        assert os.dup2(new.fileno(), fd) == fd
        yield fd, new_peer
    finally:
        os.close(fd)
        for sock in (parked_peer, new, new_peer):
            sock.close()


def test_a_parked_number_that_now_names_a_new_socket_is_watched_again() -> None:
    # libcurl may close a parked socket without a word, and the number may come back for a new
    # socket: its registration must be the new socket's, or the transfer on it would never wake.
    async def run() -> list[tuple[int, int]]:
        engine = CurlEngine(Settings())
        try:
            with _parked_number_reused(engine) as (fd, peer):
                engine._on_socket(pycurl.POLL_INOUT, fd, None, None)
                peer.send(b"x")
                return engine._poller.poll(0)
        finally:
            await engine.aclose()

    events = asyncio.run(run())
    assert len(events) == 1
    assert events[0][1] & (_IN | _OUT) == _IN | _OUT


class _FailureCountingPoller:
    """The engine's poller, noting each call that failed (and raised)."""

    def __init__(self, poller: object) -> None:
        self._poller = poller
        self.failed: list[str] = []

    def __getattr__(self, name: str) -> object:
        call = getattr(self._poller, name)

        def noted(*args: object) -> object:
            try:
                return call(*args)
            except OSError:
                self.failed.append(name)
                raise

        return noted


def _watched_events(what: int, *, closed: bool) -> tuple[list[int], list[str]]:
    """Park a socket, then (``closed``: its number now a new socket's) have libcurl ask ``what``
    of the number: the events the poller then gives and the poller calls that failed so far."""

    async def run() -> tuple[list[int], list[str]]:
        engine = CurlEngine(Settings())
        counting = _FailureCountingPoller(engine._poller)
        engine._poller = counting  # type: ignore[assignment]
        try:
            if closed:
                with _parked_number_reused(engine) as (fd, peer):
                    engine._on_socket(what, fd, None, None)
                    peer.send(b"x")
                    return [e for _, e in engine._poller.poll(0)], list(counting.failed)
            sock, peer = socket.socketpair()
            with sock, peer:
                engine._on_socket(pycurl.POLL_IN, sock.fileno(), None, None)
                engine._on_socket(pycurl.POLL_REMOVE, sock.fileno(), None, None)
                assert sock.fileno() in engine._idle
                engine._on_socket(what, sock.fileno(), None, None)
                peer.send(b"x")
                return [e for _, e in engine._poller.poll(0)], list(counting.failed)
        finally:
            await engine.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("what", [pycurl.POLL_OUT, pycurl.POLL_INOUT])
def test_a_new_socket_connecting_under_a_parked_number_is_registered_without_a_failed_call(
    what: int,
) -> None:
    # On lists of many hosts nearly every connection is new, and takes the number of one libcurl
    # closed while it was parked; a new socket asks to write first (connecting). Re-arming the
    # stale number first failed, and its exception cost ~6,000 instructions per connection.
    events, failed = _watched_events(what, closed=True)
    assert failed == []
    assert len(events) == 1
    assert events[0] & _OUT


@pytest.mark.parametrize("what", [pycurl.POLL_IN, pycurl.POLL_OUT, pycurl.POLL_INOUT])
def test_a_parked_connection_reused_is_watched_for_what_libcurl_asks(what: int) -> None:
    # Asked to write first, a parked number is taken for a new socket: if it is the parked
    # connection after all (reused to send a body, say), its registration is re-armed.
    events, _ = _watched_events(what, closed=False)
    wanted = (_IN if what & pycurl.POLL_IN else 0) | (_OUT if what & pycurl.POLL_OUT else 0)
    assert len(events) == 1
    assert events[0] & (_IN | _OUT) == wanted


def test_your_own_socket_on_the_loop_may_take_a_number_the_engine_parked() -> None:
    # The engine's sockets never enter the loop's selector: a number libcurl freed silently
    # while parked can go to a socket of the caller's, which the loop then watches as usual.
    # (With the sockets on the loop itself, the stale registration swallowed it: a timeout.)
    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        engine = CurlEngine(Settings())
        try:
            with _parked_number_reused(engine) as (fd, peer):
                got: asyncio.Future[bytes] = loop.create_future()
                loop.add_reader(fd, lambda: got.done() or got.set_result(os.read(fd, 10)))
                try:
                    peer.send(b"mine")
                    return await asyncio.wait_for(got, 5)
                finally:
                    loop.remove_reader(fd)
        finally:
            await engine.aclose()

    assert asyncio.run(run()) == b"mine"


def test_both_pollers_give_the_same_records_for_every_fault(
    server: LoopbackServer, poller: str
) -> None:
    urls = [server.url(path) for path in FAULTS]
    urls += [server.url(f"/ok?i={i}") for i in range(20)]
    urls += [server.url("/redirect/2"), server.url("/status/404")]
    records = collect(urls, concurrency=4, timeout=1.0, retries=0)
    got = {record.url: record for record in records}
    assert len(got) == len(urls)
    for path, error_type in FAULTS.items():
        record = got[server.url(path)]
        assert record.error is not None
        assert record.error.type == error_type, path
    for i in range(20):
        record = got[server.url(f"/ok?i={i}")]
        assert (record.status, record.bytes, record.error) == (200, 1024, None)
    redirected = got[server.url("/redirect/2")]
    assert (redirected.status, redirected.redirects) == (200, 2)
    assert got[server.url("/status/404")].status == 404


class GateServer(_ThreadedServer):
    """Holds every request until ``release()``, then answers them all at once: many sockets
    ready in the same instant, as at -c 10,000."""

    def __init__(self) -> None:
        self.waiting: list[socket.socket] = []
        super().__init__(backlog=256)

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in pending and (data := conn.recv(65536)):
                pending += data
            with self._lock:
                self.waiting.append(conn)

    async def holding(self, count: int) -> None:
        """Wait (10 s at most) until ``count`` requests are held."""
        for _ in range(1000):
            if len(self.waiting) == count:
                break
            await asyncio.sleep(0.01)
        assert len(self.waiting) == count

    def release(self) -> None:
        with self._lock:
            for conn in self.waiting:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        with self._lock:
            for conn in self.waiting:
                conn.close()
        self._listener.close()


class _CountingPoller:
    """The engine's poller, noting how many ready sockets each poll handed out."""

    def __init__(self, poller: object) -> None:
        self._poller = poller
        self.batches: list[int] = []

    def poll(self, timeout: float, maxevents: int = -1, /) -> list[tuple[int, int]]:
        ready: list[tuple[int, int]] = self._poller.poll(timeout, maxevents)  # type: ignore[attr-defined]
        self.batches.append(len(ready))
        return ready

    def __getattr__(self, name: str) -> object:
        return getattr(self._poller, name)


def test_a_turn_of_the_loop_hands_libcurl_a_bounded_batch_of_ready_sockets(
    poller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At -c 10,000 a turn that took every ready socket ran for seconds: libcurl's timers (the
    # deadlines) and everything else on the loop waited. A turn takes EVENTS_PER_TURN at most;
    # the rest come on the next turns, and every transfer ends.
    from afetch.engine.curl import driver

    monkeypatch.setattr(driver, "EVENTS_PER_TURN", 8)
    gate = GateServer()
    transfers = 40

    async def run() -> list[int]:
        engine = CurlEngine(Settings(concurrency=transfers))
        counting = _CountingPoller(engine._poller)
        engine._poller = counting  # type: ignore[assignment]
        try:
            gets = [
                asyncio.ensure_future(_get(engine, f"{gate.url}?i={i}")) for i in range(transfers)
            ]
            await gate.holding(transfers)
            counting.batches.clear()
            gate.release()
            time.sleep(0.5)  # the loop held: every answer is in before the next poll
            assert await asyncio.gather(*gets) == [(200, 2)] * transfers
            return counting.batches
        finally:
            await engine.aclose()

    try:
        batches = asyncio.run(run())
    finally:
        gate.close()
    assert max(batches) == 8
    assert sum(batches) >= transfers


def test_a_turn_of_the_loop_tells_a_bounded_batch_of_finished_transfers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One socket_action may end thousands of transfers at once (every one whose deadline
    # passed): their records, told in one turn, held the loop for 20 s at -c 10,000. A turn
    # tells FINISHED_PER_TURN at most; the rest come on the next turns.
    from afetch.engine.curl import driver
    from afetch.engine.curl.transfer import _Transfer

    monkeypatch.setattr(driver, "FINISHED_PER_TURN", 8)
    turn = 0
    told: list[int] = []
    finish = _Transfer.finish

    def noting(slot: _Transfer, outcome: object) -> None:
        told.append(turn)
        finish(slot, outcome)  # type: ignore[arg-type]

    monkeypatch.setattr(_Transfer, "finish", noting)
    gate = GateServer()
    transfers = 40

    async def run() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        engine = CurlEngine(Settings(concurrency=transfers))

        def tick() -> None:
            nonlocal turn
            turn += 1
            loop.call_soon(tick)

        try:
            gets = [
                asyncio.ensure_future(_get(engine, f"{gate.url}?i={i}")) for i in range(transfers)
            ]
            await gate.holding(transfers)
            told.clear()
            tick()
            gate.release()
            time.sleep(0.5)  # the loop held: every answer is in before the next poll
            return await asyncio.gather(*gets)
        finally:
            await engine.aclose()

    try:
        results = asyncio.run(run())
    finally:
        gate.close()
    assert results == [(200, 2)] * transfers
    per_turn = collections.Counter(told)
    assert sum(per_turn.values()) == transfers
    assert max(per_turn.values()) == 8


class _CountingMulti:
    """The engine's multi handle, noting the loop turn each easy handle is added on."""

    def __init__(self, multi: pycurl.CurlMulti, turn: Callable[[], int]) -> None:
        self._multi = multi
        self._turn = turn
        self.added: list[int] = []

    def add_handle(self, curl: pycurl.Curl) -> None:
        self.added.append(self._turn())
        self._multi.add_handle(curl)

    def __getattr__(self, name: str) -> object:
        return getattr(self._multi, name)


def test_a_turn_of_the_loop_adds_a_bounded_batch_of_transfers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libcurl connects every transfer added before its wake-up in that one socket_action: at
    # -c 500 the first 500 connections were opened back to back before any request went out.
    # A turn adds ADDS_PER_TURN at most; the rest on the next turns, and every transfer ends.
    monkeypatch.setattr(_curl_engine, "ADDS_PER_TURN", 8)
    transfers = 40
    turn = 0

    async def run() -> tuple[list[tuple[int, int]], list[int]]:
        loop = asyncio.get_running_loop()
        engine = CurlEngine(Settings(concurrency=transfers))
        counting = _CountingMulti(engine._multi, lambda: turn)
        engine._multi = counting  # type: ignore[assignment]

        def tick() -> None:
            nonlocal turn
            turn += 1
            loop.call_soon(tick)

        tick()
        try:
            with LoopbackServer() as server:
                url = server.url("/ok")
                gets = [_get(engine, f"{url}?i={i}") for i in range(transfers)]
                return list(await asyncio.gather(*gets)), counting.added
        finally:
            await engine.aclose()

    results, added = asyncio.run(run())
    assert [status for status, _ in results] == [200] * transfers
    per_turn = collections.Counter(added)
    assert sum(per_turn.values()) == transfers
    assert max(per_turn.values()) == 8


def test_one_transfer_a_second_carries_the_dns_cache_sweep(keep_alive: KeepAliveServer) -> None:
    # Every handle keeps libcurl's DNS entries (no walk of the whole cache after each
    # transfer); the first transfer of each second carries libcurl's 60 s timeout, and so the
    # sweep, and its handle keeps entries again on its next transfer.
    class Clock:
        now = 50.0

        def time(self) -> float:
            return self.now

    clock = Clock()
    swept: list[bool] = []

    async def run() -> None:
        engine = CurlEngine(Settings(concurrency=1), clock=clock)
        try:
            for now in (50.0, 50.4, 50.99, 51.0, 51.5, 53.0):
                clock.now = now
                assert await _get(engine, keep_alive.url) == (200, 2)
                (slot,) = engine._free  # one handle, reused by every transfer
                swept.append(slot.sweeps_dns)
        finally:
            await engine.aclose()

    asyncio.run(run())
    assert swept == [True, False, False, True, False, True]
