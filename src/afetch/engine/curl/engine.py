"""The default engine: libcurl (through pycurl) on the asyncio event loop.

libcurl's multi "socket" interface tells us which sockets to watch and when to wake it, and
readiness goes back through ``socket_action``: the pattern of Tornado's ``curl_httpclient``. The
sockets are watched by an epoll of the engine's own, which the event loop watches as one reader
(``call_at`` keeps libcurl's timer): a turn of the loop hands libcurl every ready socket in one
call, with none of the loop's per-socket bookkeeping (see ``_Poller``). libcurl does the
HTTP (HTTP/1.1, HTTP/2, TLS, decoding, connection reuse) in C, so a request costs a small
fraction of the CPU of a Python HTTP stack (``bench/results/bakeoff.md``).

Rules this package keeps:

* libcurl is never called from inside one of its own callbacks: callbacks only record state;
  futures they complete resume their coroutines on a later loop turn.
* A socket's registration changes only when its wanted events really change (an fd → events
  map), and writability is dropped as soon as libcurl stops asking for it (an idle socket is
  always writable: the loop would spin).
* A transfer that is abandoned (cancelled, closed before its end) is removed from the multi
  handle at once and its easy handle goes back to the pool; at shutdown every socket is
  unregistered from the poller, and the poller from the loop, before the multi handle and the
  easy handles are closed.
* Redirects are never followed and nothing is retried here (afetch's policy decides); only
  http and https are allowed; ``.netrc`` is never read.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any

import pycurl

from afetch._clock import Clock
from afetch._errors import AfetchError, ProxyError
from afetch._settings import Settings
from afetch.engine.base import Collect, OnDone, OnHead, Request, TransferInfo
from afetch.engine.connections import pool_size, settings_per_request
from afetch.engine.curl.dns import DnsCache
from afetch.engine.curl.driver import LoopDriver
from afetch.engine.curl.poller import _new_poller, _SelectorPoller
from afetch.engine.curl.response import _CurlResponse
from afetch.engine.curl.setup import (
    _certifi_bundle,
    _header_lines,
    _HeaderLists,
    _no_certificate,
    _tls_probe,
    proxy_options,
)
from afetch.engine.curl.transfer import _Transfer
from afetch.engine.names import Answer, NamesAhead

if TYPE_CHECKING:
    from afetch.engine.tls import TlsDetails

#: libcurl before 8.12 keeps TLS sessions per easy handle: a share handle lends them across the
#: run's handles. Since 8.12 the multi handle keeps them itself (and its DNS cache always): a
#: share adds nothing there (measured: resumed handshakes alike with and without).
_SHARE_SESSIONS = pycurl.version_info()[2] < 0x080C00
#: Transfers added to the multi handle in one turn of the loop; the rest on the next turns.
#: libcurl connects every transfer added before its wake-up in that one call: at -c 500 the
#: first 500 connections were opened back to back (~30 ms) before any request went out, and
#: their 500 answers then came bunched, each waiting on the records of those before it.
ADDS_PER_TURN = 64
#: Adds in one batch from which libcurl's timer callback is unset for them (a setopt pair
#: costs about what one and a half callbacks do).
QUIET_ADDS = 3
#: The longest a transfer waits for its host's lookup under way (afetch.engine.names), at most
#: half its connect timeout; then libcurl resolves the name itself.
HOLD_S = 5.0

#: Request headers meant for the proxy: sent to it (CURLOPT_PROXYHEADER), never to a server.
_PROXY_HEADERS = frozenset({"proxy-authorization"})


class CurlEngine(LoopDriver):
    """Sends requests through one libcurl multi handle on the running event loop.

    >>> import asyncio
    >>> from afetch.engine.base import Request
    >>> from afetch._loopback import LoopbackServer
    >>> async def fetch_ok(url):
    ...     engine = CurlEngine(Settings())
    ...     over = asyncio.get_running_loop().create_future()
    ...     def on_done(response, failure):
    ...         over.set_result((response.status, response.http_version, response.bytes_read))
    ...     try:
    ...         engine.start_transfer(Request("GET", url, (("Accept", "*/*"),)), on_done=on_done)
    ...         return await over
    ...     finally:
    ...         await engine.aclose()
    >>> with LoopbackServer() as server:
    ...     asyncio.run(fetch_ok(server.url("/ok")))
    (200, 'HTTP/1.1', 1024)
    """

    def __init__(
        self, settings: Settings, collect: Collect | None = None, *, clock: Clock | None = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        #: What request deadlines are times on (libcurl is given the time left).
        self._clock: Clock = clock or self._loop
        #: Its time, read per request: the asyncio loop's is time.monotonic, called directly.
        self._time = (
            time.monotonic
            if getattr(self._clock.time, "__func__", None) is asyncio.BaseEventLoop.time
            else self._clock.time
        )
        self._settings = settings
        self._max_size = settings.max_size
        self._proxy = proxy_options(settings)  # the environment read once, not per handle
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        # Connections open at once, idle ones included: -c in use, and idle ones kept for the
        # hosts a list comes back to (oldest closed first), as curl --parallel keeps them.
        pool = pool_size(settings.concurrency, per_request=settings_per_request(settings))
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, pool)
        multi.setopt(pycurl.M_MAXCONNECTS, pool)
        self._multi = multi
        #: fd → the events (POLL_IN | POLL_OUT) libcurl wants of it, as registered.
        self._watched: dict[int, int] = {}
        #: Sockets idling in libcurl's pool whose reader stays registered ("parked").
        self._idle: set[int] = set()
        self._poller = _new_poller()
        #: Parking needs a poller that tells a stale registration (see _on_socket).
        self._park_idle = not isinstance(self._poller, _SelectorPoller)
        self._loop.add_reader(self._poller.fileno(), self._ready)
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_due = 0.0
        self._timer_soon = False  # a call_soon wake-up is pending (until _on_timeout runs)
        self._finish_soon = False
        self._dns = DnsCache()
        self._free: list[_Transfer] = []
        self._slot_of: dict[pycurl.Curl, _Transfer] = {}  # type: ignore[assignment]
        #: Transfers started on callbacks, to add to the multi handle together on the next turn.
        self._pending: list[_Transfer] = []
        self._active: set[_Transfer] = set()
        #: Collect.tls: handshakes probed after a failed verification (see _transfer_over).
        self._probes: set[asyncio.Task[None]] = set()
        self._closed = False
        self._header_lists: tuple[object, bool, _HeaderLists] = ((), False, ([], []))
        # Transfer info (timings, address, TLS): read from libcurl before a handle is released.
        collect = collect or Collect()
        self._info_wanted = collect.transfer or collect.tls
        self._tls_wanted = collect.tls
        #: TLS sessions across easy handles (see _SHARE_SESSIONS); none under Collect.tls, whose
        #: handles resume no session so that every connection shows its certificate.
        self._share: pycurl.CurlShare | None = None
        if _SHARE_SESSIONS and not collect.tls:
            self._share = pycurl.CurlShare()
            self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        #: TLS details per live connection (a reused connection does not show them again),
        #: keyed by its address 4-tuple; oldest dropped first beyond a bound.
        self._tls_seen: dict[tuple[Any, ...], TlsDetails] = {}
        self._tls_seen_max = pool + 16
        # As curl and httpx: --cacert, else SSL_CERT_FILE, else certifi's bundle (libcurl's
        # compiled-in path belongs to the machine the wheel was built on).
        self._cainfo = settings.cacert or os.environ.get("SSL_CERT_FILE") or _certifi_bundle()
        #: Host names looked up ahead on threads of the run's own (libcurl's resolver runs 20
        #: lookups at once); none when a proxy may be used (it resolves names itself), nor when
        #: each transfer's timings are asked for (their "dns" is the lookup's time).
        self._names: NamesAhead | None = None
        self.resolve_ahead: Callable[[str], None] | None = None
        if self._proxy[0] == "" and not self._info_wanted:  # "": no proxy, nor any to look for
            self._names = NamesAhead(
                lookups=settings.concurrency, time=self._time, begin=self._begin_held
            )
            self.resolve_ahead = self._names.ask
        connect = settings.connect_timeout or settings.timeout
        #: The connect timeout every handle has (setup.new_handle), in ms; 0: none.
        self._connect_ms = 0 if connect is None else max(1, round(connect * 1000))
        #: How long a transfer waits for its host's lookup under way: half the connect timeout.
        self._hold_s = HOLD_S if connect is None else min(HOLD_S, connect / 2)

    # -- requests -------------------------------------------------------------------------------

    def _add_pending(self) -> None:
        pending = self._pending
        batch, self._pending = pending[:ADDS_PER_TURN], pending[ADDS_PER_TURN:]
        multi = self._multi
        add = multi.add_handle
        # libcurl calls its timer back after each add, to say "now" (~2,900 instructions
        # through pycurl each): a batch is added with the timer callback unset, then told so
        # once. A socket_action on the timeout then calls the timer back whatever it was told
        # before (libcurl clears its last expiry there), so nothing it set is lost.
        quiet = len(batch) >= QUIET_ADDS
        if quiet:
            multi.setopt(pycurl.M_TIMERFUNCTION, None)
        try:
            for slot in batch:
                if slot.pending:
                    slot.pending = False
                    add(slot.curl)
        finally:
            if quiet:
                multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
                self._on_timer(0)
        if self._pending:
            # After the adds: libcurl's wake-up (connecting this batch) comes first.
            self._loop.call_soon(self._add_pending)

    def start_transfer(
        self,
        request: Request,
        *,
        on_done: OnDone,
        on_head: OnHead | None = None,
        ask_for: Container[int] = (),
        extra: tuple[tuple[str, str], ...] = (),
    ) -> _Transfer:
        """Start ``request`` on callbacks alone: no coroutine, task or future per transfer (see
        :meth:`afetch.engine.base.Engine.start_transfer`). The returned transfer is the
        caller's handle (``resume``, ``cancel``) until ``on_done`` is told."""
        if self._closed:
            raise RuntimeError("engine is closed")
        # May refuse a header: before a handle is taken. Every request of a run shares one
        # headers tuple, formatted once: the same lists again, without a call.
        last, had_body, headers = self._header_lists
        body = request.body is not None
        if request.headers is not last or body is not had_body:
            headers = self._header_list(request.headers, body)
        if extra:
            headers = (headers[0] + _header_lines(extra), headers[1])
        slot = self._free.pop() if self._free else _Transfer(self)
        now = self._time()  # one read of the clock for the deadline and the DNS sweep
        slot.prepare(request, headers, now)
        slot.on_head = on_head
        slot.ask_for = ask_for
        slot.on_done = on_done
        self._active.add(slot)
        names = self._names
        answer = None
        if names is not None and names.looking:  # else no lookup to take or wait for
            url = request.url
            end = url.find("/", 8)
            origin = url if end < 0 else url[:end]
            answer = names.take(origin)
            if answer is None:
                # If its host's lookup is under way, begun when it comes back (_begin_held).
                slot.deferred = (now, origin)
                if names.hold(origin, slot, self._hold_s):
                    return slot
                slot.deferred = None
        self._begin(slot, answer, now)
        return slot

    def _begin(
        self, slot: _Transfer, answer: Answer | None, now: float, held_s: float = 0.0
    ) -> None:
        """Queue ``slot``'s prepared transfer for the multi handle at ``now``, with its host's
        addresses if they were looked up ahead, after ``held_s`` spent waiting for them."""
        curl = slot.curl
        dns = self._dns
        if answer is not None or now >= dns.sweep_at or slot.sweeps_dns or slot.resolves:
            dns.set(slot, now, answer)  # (most transfers change nothing there: no call)
        connect_ms = self._connect_ms
        if held_s:  # the wait counts against both timeouts, as a lookup by libcurl would
            deadline = slot.request.deadline  # type: ignore[union-attr]
            if deadline is not None:
                slot.timeout_ms = max(1, round((deadline - now) * 1000))
                curl.setopt(pycurl.TIMEOUT_MS, slot.timeout_ms)
            if connect_ms:
                slot.connect_ms = max(1, connect_ms - round(held_s * 1000))
                curl.setopt(pycurl.CONNECTTIMEOUT_MS, slot.connect_ms)
        elif slot.connect_ms != connect_ms:
            curl.setopt(pycurl.CONNECTTIMEOUT_MS, connect_ms)
            slot.connect_ms = connect_ms
        # Added together on the next turn: libcurl then sends the batch of requests back to
        # back. Added one by one, each send would go out from inside the next socket's
        # socket_action (libcurl runs due transfers there), between reads: on loopback every
        # send then wakes an idle server, which doubled its CPU.
        slot.pending = True
        if not self._pending:
            self._loop.call_soon(self._add_pending)
        self._pending.append(slot)

    def _begin_held(self, slot: _Transfer, answer: Answer | None) -> None:
        """The lookup ``slot`` waited for came back (``answer``, or None: failed or too late)."""
        assert slot.deferred is not None
        since = slot.deferred[0]
        slot.deferred = None
        try:
            now = self._time()
            self._begin(slot, answer, now, now - since)
        except Exception as exc:  # on_done is told whatever happens: nothing waits forever
            on_done = slot.on_done
            self._active.discard(slot)  # never added to the multi handle
            slot.on_head = slot.on_done = None
            self._free.append(slot)
            if on_done is not None:
                on_done(None, exc)

    def _transfer_over(self, slot: _Transfer, on_done: OnDone) -> None:
        """A transfer on callbacks is over: what the caller may ask later is read from libcurl,
        the handle goes back to the pool, then ``on_done`` is told."""
        failure = slot.failure
        response = slot.response
        info = None
        try:
            if response is None and slot.head_seen and slot.status:
                response = _CurlResponse(slot)
            if response is not None:
                response.bytes_read = slot.received
                if failure is None and response.status == 407 and slot.used_proxy():
                    # The proxy's answer, not the server's (a tunnel refused with 407 is a
                    # failed transfer instead, see _Transfer.finish): the same error either way.
                    failure = ProxyError("the proxy answered 407 Proxy Authentication Required")
                    response = None
            if self._info_wanted:
                info = slot.transfer_info()
                if response is not None:
                    response.info = info
                elif isinstance(failure, AfetchError):
                    # A failed TLS handshake still shows the certificate.
                    failure.transfer_info = info  # type: ignore[attr-defined]
        except Exception as exc:  # on_done is told whatever happens: nothing waits forever
            response, failure, info = None, exc, None
        request = slot.request
        self.release(slot)
        if (
            response is None
            and info is not None
            and self._tls_wanted
            and _no_certificate(failure, info)  # type: ignore[arg-type]
        ):
            # A TLS library that keeps no certificate of a failed verification: one more
            # handshake, unverified, just to see it (then on_done is told).
            task = self._loop.create_task(self._probe_then(request, info, failure, on_done))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)
            return
        on_done(response, failure)

    async def _probe_then(
        self,
        request: Request,
        info: TransferInfo,
        failure: BaseException | None,
        on_done: OnDone,
    ) -> None:
        try:
            tls = await self._probe_tls(request)
        except Exception:
            tls = None
        failure.transfer_info = info._replace(tls=tls)  # type: ignore[union-attr]
        on_done(None, failure)

    async def _probe_tls(self, request: Request) -> dict[str, Any] | None:
        settings = self._settings
        timeout = settings.connect_timeout or settings.timeout or 30.0
        details = await asyncio.to_thread(_tls_probe, request, timeout, settings, self._cainfo)
        return None if details is None else details.record()

    def tls_details(self, slot: _Transfer) -> TlsDetails | None:
        """The TLS details of ``slot``'s connection: read now if the transfer made it, else as
        noted when it was made."""
        getinfo = slot.curl.getinfo
        key = (
            getinfo(pycurl.PRIMARY_IP),
            getinfo(pycurl.PRIMARY_PORT),
            getinfo(pycurl.LOCAL_IP),
            getinfo(pycurl.LOCAL_PORT),
        )
        seen = self._tls_seen
        if slot.tls_line is not None:
            from afetch.engine.tls import TlsDetails

            details = TlsDetails.from_curl(slot.tls_line, getinfo(pycurl.INFO_CERTINFO))
            slot.tls_line = None
            seen.pop(key, None)
            seen[key] = details
            if len(seen) > self._tls_seen_max:
                del seen[next(iter(seen))]
            return details
        return seen.get(key)

    def _header_list(self, headers: tuple[tuple[str, str], ...], body: bool) -> _HeaderLists:
        """The header lines of ``headers`` (start_transfer reuses the last ones itself)."""
        server: list[str] = []
        proxy: list[str] = []
        for (name, _), line in zip(headers, _header_lines(headers), strict=True):
            (proxy if name.lower() in _PROXY_HEADERS else server).append(line)
        if body and not any(name.lower() == "expect" for name, _ in headers):
            # No "Expect: 100-continue" (libcurl adds it to large bodies): it costs a round trip,
            # and up to a second of waiting on servers that never answer it.
            server.append("Expect:")
        formatted = (server, proxy)
        self._header_lists = (headers, body, formatted)
        return formatted

    def release(self, slot: _Transfer) -> None:
        """Take ``slot``'s transfer off the multi handle (done or not) and pool the handle."""
        if slot not in self._active:
            return
        self._active.discard(slot)
        if slot.deferred is not None:  # held for its host's lookup: never added
            assert self._names is not None
            self._names.drop(slot.deferred[1], slot)
            slot.deferred = None
            slot.on_head = slot.on_done = None
            if not self._closed:
                self._free.append(slot)
            return
        # The transfer is over for the caller: what it held goes.
        slot.inflating = None
        if slot.unpausing is not None:
            slot.unpausing.cancel()
            slot.unpausing = None
        slot.on_head = slot.on_done = slot.sink = None
        if slot.pending:
            slot.pending = False
            self._pending.remove(slot)
            if not self._closed:
                self._free.append(slot)
        elif not self._closed:
            # Removing an unfinished transfer closes its connection; libcurl may call the
            # socket callback from here, which only updates the loop.
            self._multi.remove_handle(slot.curl)
            self._free.append(slot)

    async def aclose(self) -> None:
        if self._closed:
            return
        for slot in list(self._active):
            self.release(slot)
        for task in list(self._probes):
            task.cancel()
        self._closed = True
        for fd in list(self._watched):
            self._unwatch(fd)
        self._loop.remove_reader(self._poller.fileno())
        self._poller.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_soon = False
        if self._names is not None:
            self._names.close()
        self._multi.close()
        for slot in self._free:
            slot.curl.close()
        self._free.clear()
        self._slot_of.clear()
        if self._share is not None:
            self._share.close()
