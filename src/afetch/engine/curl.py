"""The default engine: libcurl (through pycurl) on the asyncio event loop.

libcurl's multi "socket" interface tells us which sockets to watch and when to wake it, and
readiness goes back through ``socket_action``: the pattern of Tornado's ``curl_httpclient``. The
sockets are watched by an epoll of the engine's own, which the event loop watches as one reader
(``call_at`` keeps libcurl's timer): a turn of the loop hands libcurl every ready socket in one
call, with none of the loop's per-socket bookkeeping (see ``_Poller``). libcurl does the
HTTP (HTTP/1.1, HTTP/2, TLS, decoding, connection reuse) in C, so a request costs a small
fraction of the CPU of a Python HTTP stack (``bench/results/bakeoff.md``).

Rules this module keeps:

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
import contextlib
import importlib.util
import itertools
import os
import re
import select
import selectors
from collections import deque
from collections.abc import AsyncIterator, Container, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import pycurl

from afetch._errors import AfetchError, BadResponse, ProxyError, TooLarge
from afetch._settings import Settings
from afetch.engine.base import BodySink, Headers, OnDone, OnHead, Request, TransferInfo
from afetch.engine.decode import ACCEPT_ENCODING, PIECES_PER_TURN, Decoder

if TYPE_CHECKING:
    from afetch.engine.tls import TlsDetails

_POLL_IN = pycurl.POLL_IN
_POLL_OUT = pycurl.POLL_OUT
_POLL_REMOVE = pycurl.POLL_REMOVE
_SOCKET_TIMEOUT = pycurl.SOCKET_TIMEOUT
_PAUSE = pycurl.WRITEFUNC_PAUSE
_INFOTYPE_TEXT = pycurl.INFOTYPE_TEXT
#: epoll's event bits (select.EPOLLIN ...; spelled out: select has no epoll off Linux).
_IN, _OUT, _ERR, _HUP = 0x001, 0x004, 0x008, 0x010
#: libcurl's wanted events (POLL_IN 1, POLL_OUT 2, POLL_INOUT 3) → the poller's.
_WANTED = (0, _IN, _OUT, _IN | _OUT)
#: The poller's events (their low five bits) → libcurl's CSELECT flags.
_CSELECT = tuple(
    (pycurl.CSELECT_IN if e & (_IN | _HUP | _ERR) else 0)
    | (pycurl.CSELECT_OUT if e & _OUT else 0)
    | (pycurl.CSELECT_ERR if e & _ERR else 0)
    for e in range(32)
)
#: A body buffered beyond this many bytes, not yet read, pauses the transfer.
_BUFFER_LIMIT = 1 << 20
_HTTP_ONLY = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
#: CURLINFO_USED_PROXY (libcurl 8.7): whether a proxy applied to the transfer.
_USED_PROXY = getattr(pycurl, "USED_PROXY", None)
#: Whether this libcurl speaks HTTP/3 (else --http3 means what --http2 does).
_HAS_HTTP3 = bool(pycurl.version_info()[4] & getattr(pycurl, "VERSION_HTTP3", 0))
#: CURLOPT_SUPPRESS_CONNECT_HEADERS (libcurl 7.54), which pycurl does not name.
_SUPPRESS_CONNECT_HEADERS = getattr(pycurl, "SUPPRESS_CONNECT_HEADERS", 265)
#: Request headers meant for the proxy: sent to it (CURLOPT_PROXYHEADER), never to a server.
_PROXY_HEADERS = frozenset({"proxy-authorization"})

#: libcurl result codes → (afetch error type, what happened in afetch's words), after
#: libcurl-errors(3). libcurl's own message says more and follows when it has one; a code
#: missing here is "other".
_ERRORS = {
    # UNSUPPORTED_PROTOCOL: the fetcher lets only http(s) URLs through, so this is a reply that
    # is not HTTP at all ("Received HTTP/0.9 when not allowed").
    1: ("protocol", "the reply is not HTTP"),
    3: ("invalid_url", "the URL is malformed"),
    5: ("proxy", "the proxy's name could not be resolved"),
    6: ("dns", "the host name could not be resolved"),
    7: ("connect", "the connection could not be made"),
    8: ("protocol", "the server's reply is malformed"),
    16: ("protocol", "HTTP/2 framing error"),
    18: ("protocol", "body shorter than its Content-Length"),
    23: ("other", "the body could not be passed on"),  # WRITE_ERROR: a callback refused it
    28: ("timeout", "timed out"),
    35: ("tls", "the TLS handshake failed"),
    47: ("too_many_redirects", "too many redirects"),
    52: ("reset", "the server closed the connection without replying"),  # GOT_NOTHING
    55: ("reset", "sending the request failed"),
    56: ("reset", "receiving the response failed"),  # after the head: truncated, see _error
    58: ("tls", "the client certificate is unusable"),
    59: ("tls", "no usable TLS cipher"),
    60: ("tls", "the server's certificate could not be verified"),
    61: ("protocol", "the body's Content-Encoding is unknown or its data corrupt"),
    63: ("too_large", "the body is over the size limit"),
    77: ("tls", "the CA bundle could not be read"),
    80: ("tls", "the TLS shutdown failed"),
    83: ("tls", "the certificate's issuer check failed"),
    90: ("tls", "the server's public key does not match the pinned one"),
    91: ("tls", "the certificate status is invalid"),
    92: ("protocol", "HTTP/2 stream error"),
    95: ("protocol", "HTTP/3 error"),
    96: ("connect", "the QUIC connection could not be made"),
    97: ("proxy", "the proxy refused the handshake"),
    100: ("protocol", "the response headers are too large"),  # TOO_LARGE
}
#: libcurl 8 reports response headers over its limit (300 KB in all) as a receive error (56),
#: one header over 100 KB as TOO_LARGE (100): both are the server breaking HTTP, not a reset.
_HEADERS_TOO_LARGE = "Too large response headers"


_UNSENDABLE = re.compile(r"[\r\n\0]")


class BadHeader(AfetchError):
    """A request header that cannot be sent as one header line."""


class CurlError(AfetchError):
    """A transfer failed inside libcurl; ``error_type`` comes from its result code."""

    def __init__(self, code: int, message: str, error_type: str) -> None:
        super().__init__(message)
        self.code = code
        self.error_type = error_type


def _error(code: int, message: str, *, head_seen: bool, at_proxy: bool = False) -> AfetchError:
    kind, words = _ERRORS.get(code, ("other", ""))
    if at_proxy:
        kind = "proxy"
    elif message.startswith(_HEADERS_TOO_LARGE):
        kind, words = _ERRORS[100]
    # afetch's words, then libcurl's: never a bare "libcurl error 100".
    text = f"{words}: {message}" if words and message else words or message
    text = text or f"libcurl error {code}"
    if head_seen and kind == "reset":
        # The head had arrived: the body was cut short, as afetch reports it on every engine,
        # or its chunked framing broken (libcurl's receive error for both).
        if "chunk" in message:
            return BadResponse(f"malformed chunked body: {message}")
        return BadResponse(f"body cut short: {text}")
    return CurlError(code, text, kind)


class CurlEngine:
    """Sends requests through one libcurl multi handle on the running event loop.

    >>> import asyncio
    >>> from afetch.engine.base import Request
    >>> from afetch._loopback import LoopbackServer
    >>> async def fetch_ok(url):
    ...     engine = CurlEngine(Settings())
    ...     try:
    ...         response = await engine.send(Request("GET", url, (("Accept", "*/*"),)))
    ...         size = await response.drain()
    ...         await response.aclose()
    ...         return response.status, response.http_version, size
    ...     finally:
    ...         await engine.aclose()
    >>> with LoopbackServer() as server:
    ...     asyncio.run(fetch_ok(server.url("/ok")))
    (200, 'HTTP/1.1', 1024)
    """

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.get_running_loop()
        self._settings = settings
        self._max_size = settings.max_size
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, settings.concurrency)
        multi.setopt(pycurl.M_MAXCONNECTS, settings.concurrency)
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
        self._timer_soon = False  # the pending wake-up is a call_soon
        self._free: list[_Slot] = []
        #: Counted transfers to add to the multi handle, together, on the next turn.
        self._pending: list[_Slot] = []
        self._active: set[_Slot] = set()
        #: --include tls: handshakes probed after a failed verification (see _transfer_over).
        self._probes: set[asyncio.Task[None]] = set()
        self._closed = False
        self._header_lists: tuple[object, bool, _HeaderLists] = ((), False, ([], []))
        # --include timings/remote/tls: read from libcurl before a handle is released.
        include = settings.include
        self._info_wanted = any(k in include for k in ("timings", "remote", "tls"))
        self._tls_wanted = "tls" in include
        #: TLS details per live connection (a reused connection does not show them again),
        #: keyed by its address 4-tuple; oldest dropped first beyond a bound.
        self._tls_seen: dict[tuple[Any, ...], TlsDetails] = {}
        self._tls_seen_max = 4 * settings.concurrency + 16
        # As curl and httpx: --cacert, else SSL_CERT_FILE, else certifi's bundle (libcurl's
        # compiled-in path belongs to the machine the wheel was built on).
        self._cainfo = settings.cacert or os.environ.get("SSL_CERT_FILE") or _certifi_bundle()

    # -- requests -------------------------------------------------------------------------------

    def _start(
        self, request: Request, *, defer: bool = False, extra: tuple[tuple[str, str], ...] = ()
    ) -> _Slot:
        if self._closed:
            raise RuntimeError("engine is closed")
        # May refuse a header: before a slot.
        headers = self._header_list(request.headers, request.body is not None)
        if extra:
            headers = (headers[0] + _header_lines(extra), headers[1])
        slot = self._free.pop() if self._free else _Slot(self)
        slot.prepare(request, headers)
        self._active.add(slot)
        if defer:
            # Added together on the next turn: libcurl then sends the batch of requests back
            # to back. Added one by one, each send would go out from inside the next socket's
            # socket_action (libcurl runs due transfers there), between reads: on loopback every
            # send then wakes an idle server, which doubled its CPU.
            slot.pending = True
            if not self._pending:
                self._loop.call_soon(self._add_pending)
            self._pending.append(slot)
            return slot
        self._multi.add_handle(slot.curl)
        # libcurl asks for a timer of 0 ms on add_handle: the transfer starts on the next turn.
        return slot

    def _add_pending(self) -> None:
        pending, self._pending = self._pending, []
        add = self._multi.add_handle
        for slot in pending:
            if slot.pending:
                slot.pending = False
                add(slot.curl)

    def start_transfer(
        self,
        request: Request,
        *,
        on_done: OnDone,
        on_head: OnHead | None = None,
        ask_for: Container[int] = (),
        extra: tuple[tuple[str, str], ...] = (),
    ) -> _Slot:
        """Start ``request`` on callbacks alone: no coroutine, task or future per transfer (see
        :meth:`afetch.engine.base.Engine.start_transfer`). The slot is the transfer's handle
        (``resume``, ``cancel``) until ``on_done`` is told."""
        slot = self._start(request, defer=True, extra=extra)
        slot.head = None
        slot.unbuffered = True
        slot.on_head = on_head
        slot.ask_for = ask_for
        slot.on_done = on_done
        return slot

    def _transfer_over(self, slot: _Slot, on_done: OnDone) -> None:
        """A transfer on callbacks is over: what the caller may ask later is read from libcurl,
        the handle goes back to the pool, then ``on_done`` is told."""
        failure = slot.failure
        response = slot.response
        info = None
        try:
            if response is None and slot.head_seen and slot.status:
                response = _TransferResponse(slot)
            if response is not None:
                response.bytes_read = slot.received
                if failure is None and response.status == 407 and slot.used_proxy():
                    # The proxy's answer, not the server's: no response, as send() says it.
                    failure = ProxyError("the proxy answered 407 Proxy Authentication Required")
                    response = None
            if self._info_wanted:
                info = slot.transfer_info()
                if response is not None:
                    response.info = info
                elif isinstance(failure, AfetchError):
                    # --include: a failed TLS handshake still shows the certificate.
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

    async def send(self, request: Request) -> _CurlResponse:
        slot = self._start(request)
        slot.head = self._loop.create_future()
        slot.on_done = None
        try:
            await slot.head
            if slot.status == 407 and slot.used_proxy():
                # The proxy's own answer, not the server's (a tunnel refused with 407 is a
                # failed transfer instead, see _Slot.finish): the same error either way.
                raise ProxyError("the proxy answered 407 Proxy Authentication Required")
        except BaseException as exc:
            info = None
            if self._info_wanted and isinstance(exc, AfetchError):
                # --include: a failed TLS handshake still shows the certificate.
                info = slot.transfer_info()
            self.release(slot)
            if info is not None:
                if self._tls_wanted and _no_certificate(exc, info):
                    # A TLS library that keeps no certificate of a failed verification: one
                    # more handshake, unverified, just to see it.
                    info = info._replace(tls=await self._probe_tls(request))
                exc.transfer_info = info  # type: ignore[attr-defined]
            raise
        if slot.tls_line is not None:
            # This transfer made a TLS connection: note what it showed before other transfers
            # (HTTP/2 streams) reuse it.
            self.tls_details(slot)
        return _CurlResponse(slot)

    async def _probe_tls(self, request: Request) -> dict[str, Any] | None:
        settings = self._settings
        timeout = settings.connect_timeout or settings.timeout or 30.0
        details = await asyncio.to_thread(_tls_probe, request, timeout, settings, self._cainfo)
        return None if details is None else details.record()

    def tls_details(self, slot: _Slot) -> TlsDetails | None:
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
        # Every request of a run shares one headers tuple: format it once.
        last, had_body, formatted = self._header_lists
        if headers is last and body is had_body:
            return formatted
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

    def release(self, slot: _Slot) -> None:
        """Take ``slot``'s transfer off the multi handle (done or not) and pool the handle."""
        if slot not in self._active:
            return
        self._active.discard(slot)
        slot.detach()
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
        self._multi.close()
        for slot in self._free:
            slot.curl.close()
        self._free.clear()

    # -- libcurl's callbacks ----------------------------------------------------------------------

    # A connection that goes idle in libcurl's pool is unregistered by libcurl and registered
    # again when reused: two epoll_ctl calls per request. Instead its reader stays registered
    # while it idles ("parked"); if it becomes readable meanwhile (the server closed it), it is
    # unregistered then. libcurl may also close a parked socket without telling us, and the
    # number may come back for a new socket. epoll forgets a socket at its last close, so
    # re-arming the number (modify) fails then, and the new socket is registered instead.

    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        watched = self._watched
        if what == _POLL_REMOVE or self._closed:
            had = watched.get(fd, 0)
            if had & _POLL_IN and self._park_idle and not self._closed:
                if had & _POLL_OUT:
                    self._poller.modify(fd, _IN)
                self._idle.add(fd)
                watched[fd] = _POLL_IN
            else:
                self._unwatch(fd)
            return
        idle = self._idle
        if fd in idle:
            idle.discard(fd)
            try:
                self._poller.modify(fd, _WANTED[what])
            except FileNotFoundError:  # the parked socket was closed: the number is a new one
                self._poller.register(fd, _WANTED[what])
            watched[fd] = what
            return
        had = watched.get(fd, 0)
        if what == had:
            return
        if had:
            self._poller.modify(fd, _WANTED[what])
        else:
            self._poller.register(fd, _WANTED[what])
        watched[fd] = what

    def _unwatch(self, fd: int) -> None:
        self._idle.discard(fd)
        if self._watched.pop(fd, 0):
            with contextlib.suppress(OSError):  # a closed socket: the poller dropped it already
                self._poller.unregister(fd)

    def _ready(self) -> None:
        """The poller has events (the loop saw its fd readable): hand each one to libcurl."""
        if self._closed:
            return
        action = self._multi.socket_action
        idle = self._idle
        for fd, events in self._poller.poll(0):
            if fd in idle:
                # A parked connection stirred (closed by the server): libcurl finds out on reuse.
                self._unwatch(fd)
            else:
                action(fd, _CSELECT[events & 31])
        self._finished()

    def _on_timer(self, ms: int) -> None:
        # A wake-up earlier than libcurl asked for is harmless (it re-arms its timer), so a
        # pending one is kept when it is due no later: no cancel-and-allocate per request.
        # -1 ("no timeout") leaves a pending wake-up in place for the same reason. libcurl
        # calls this two or three times per request: a wake-up already due this turn of the
        # loop answers every call without even reading the clock.
        if ms < 0 or self._closed:
            return
        timer = self._timer
        if ms == 0:
            if timer is not None:
                if self._timer_soon:
                    return
                timer.cancel()
            # "As soon as possible"; socket_action may not be called from in here.
            self._timer = self._loop.call_soon(self._on_timeout)
            self._timer_soon = True
            return
        if timer is not None and self._timer_soon:
            return
        due = self._loop.time() + ms / 1000
        if timer is not None:
            if self._timer_due <= due:
                return
            timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._on_timeout)
        self._timer_soon = False

    def _on_timeout(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._multi.socket_action(_SOCKET_TIMEOUT, 0)
        self._finished()

    def _finished(self) -> None:
        """Tell the transfers libcurl finished, after a socket_action."""
        info_read = self._multi.info_read
        while True:
            queued, done, failed = info_read()
            for curl in done:
                curl.slot.finish(None)
            for curl, code, message in failed:
                curl.slot.finish((code, message))
            if not queued:
                break


class _Poller(Protocol):
    """What the engine asks of its socket watcher: ``select.epoll``'s calls.

    The engine's sockets live in a poller of their own and the loop watches only the poller's
    fd. A ready socket then costs a tuple from ``poll``, not the loop's selector key, event mask,
    handle and callback run per socket; registering one is a C call, not ``add_reader``'s
    bookkeeping (10k × 1 KB: 1.87 → 1.62 s in the seventh round's run, docs/performance.md)."""

    def fileno(self) -> int: ...
    def register(self, fd: int, eventmask: int, /) -> None: ...
    def modify(self, fd: int, eventmask: int, /) -> None: ...
    def unregister(self, fd: int, /) -> None: ...
    def poll(self, timeout: float, /) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...


#: select.epoll where there is one (Linux); parking relies on its forgetting a closed socket.
_EPOLL: type | None = getattr(select, "epoll", None)
if _EPOLL is None and not hasattr(selectors.DefaultSelector, "fileno"):
    # Only select() or poll() here: nothing the loop could watch as one descriptor.
    # open_engine then uses httpx's own transport, as where pycurl is missing.
    raise ImportError("the libcurl engine needs epoll or kqueue")


class _SelectorPoller:
    """The poller on ``selectors`` (kqueue on macOS and the BSDs), with epoll's event bits.

    It keeps a key per registered number even after the socket closed, so a stale registration
    could not be told from a new socket's: the engine parks no sockets on it.

    >>> import socket
    >>> a, b = socket.socketpair()
    >>> poller = _SelectorPoller()
    >>> poller.register(a.fileno(), _IN | _OUT)
    >>> [events for fd, events in poller.poll(0)] == [_OUT]
    True
    >>> _ = b.send(b"x")
    >>> [events for fd, events in poller.poll(0)] == [_IN | _OUT]
    True
    >>> poller.unregister(a.fileno()); poller.close(); a.close(); b.close()
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def fileno(self) -> int:
        return self._selector.fileno()  # type: ignore[attr-defined,no-any-return]

    def register(self, fd: int, eventmask: int, /) -> None:
        self._selector.register(fd, _selector_events(eventmask))

    def modify(self, fd: int, eventmask: int, /) -> None:
        self._selector.modify(fd, _selector_events(eventmask))

    def unregister(self, fd: int, /) -> None:
        with contextlib.suppress(KeyError):
            self._selector.unregister(fd)

    def poll(self, timeout: float, /) -> list[tuple[int, int]]:
        return [
            (
                key.fd,
                (_IN if mask & selectors.EVENT_READ else 0)
                | (_OUT if mask & selectors.EVENT_WRITE else 0),
            )
            for key, mask in self._selector.select(timeout)
        ]

    def close(self) -> None:
        self._selector.close()


def _selector_events(eventmask: int) -> int:
    return (selectors.EVENT_READ if eventmask & _IN else 0) | (
        selectors.EVENT_WRITE if eventmask & _OUT else 0
    )


def _new_poller() -> _Poller:
    return _EPOLL() if _EPOLL is not None else _SelectorPoller()


class _Slot:
    """One easy handle and the state of the transfer it is running; reused across requests."""

    __slots__ = (
        "ask_for",
        "body_error",
        "buffer",
        "buffered",
        "curl",
        "decoder",
        "done",
        "engine",
        "failure",
        "head",
        "head_end",
        "head_lines",
        "head_seen",
        "head_start",
        "held",
        "http_version",
        "inflating",
        "method",
        "on_done",
        "on_head",
        "paused",
        "pending",
        "pinned",
        "proxy_headers",
        "received",
        "request",
        "response",
        "searchable",
        "server_headers",
        "sink",
        "skip",
        "status",
        "timeout_ms",
        "tls_line",
        "unbuffered",
        "unpausing",
        "waiter",
    )

    def __init__(self, engine: CurlEngine) -> None:
        self.engine = engine
        curl = pycurl.Curl()
        curl.slot = self  # type: ignore[attr-defined]  # found again from info_read
        settings = engine._settings
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.PROTOCOLS, _HTTP_ONLY)
        curl.setopt(pycurl.REDIR_PROTOCOLS, _HTTP_ONLY)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.NETRC, pycurl.NETRC_IGNORED)
        # Asked for by libcurl, undone here (afetch.engine.decode.Decoder, as on the httpx engine):
        # libcurl's own decoding takes a compressed stream cut short for a whole body.
        curl.setopt(pycurl.ACCEPT_ENCODING, ACCEPT_ENCODING)
        curl.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
        curl.setopt(pycurl.TCP_NODELAY, 1)
        curl.setopt(pycurl.HTTP_VERSION, _http_version(settings))
        if settings.http2 or settings.http3:
            curl.setopt(pycurl.PIPEWAIT, 1)
        if settings.verify:
            curl.setopt(pycurl.CAINFO, engine._cainfo)
        else:
            curl.setopt(pycurl.SSL_VERIFYPEER, 0)
            curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        _set_proxy(curl, settings, engine._cainfo)
        connect = settings.connect_timeout or settings.timeout
        if connect is not None:
            curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, round(connect * 1000)))
        self.timeout_ms = -1
        if engine._tls_wanted:
            # --include tls: the certificate chain of each new connection, and libcurl's
            # "SSL connection using VERSION / CIPHER" line (only ever told to the debug hook).
            # No TLS session reuse, so that every new connection shows its certificate.
            curl.setopt(pycurl.OPT_CERTINFO, 1)
            curl.setopt(pycurl.SSL_SESSIONID_CACHE, 0)
            curl.setopt(pycurl.VERBOSE, 1)
            curl.setopt(pycurl.DEBUGFUNCTION, self._on_debug)
        self.head_lines: list[bytes] = []
        curl.setopt(pycurl.HEADERFUNCTION, self.head_lines.append)
        curl.setopt(pycurl.WRITEFUNCTION, self._on_body)
        self.curl = curl
        self.method: tuple[str, bool] = ("GET", False)
        self.pinned = False
        self.pending = False
        self.proxy_headers: list[str] = []
        self.server_headers: list[str] | None = None
        self.head_start = self.head_end = self.status = 0
        self.http_version = "HTTP/1.1"
        self.buffer: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        #: The head's future (send), or None for a counted transfer, whose callbacks are these.
        self.head: asyncio.Future[None] | None = None
        self.on_head: OnHead | None = None
        self.ask_for: Container[int] = ()
        #: A counted transfer's body sink, if its on_head gave one (see OnHead).
        self.sink: BodySink | None = None
        # The state of one transfer, set again by prepare() for each.
        self.done = self.head_seen = self.unbuffered = self.paused = self.held = False
        self.request: Request | None = None
        self.failure: AfetchError | None = None
        self.body_error: AfetchError | None = None
        self.response: _TransferResponse | None = None
        self.tls_line: bytes | None = None
        self.decoder: Decoder | None = None
        #: Decoded pieces not yet taken when a turn's share ran out, and how many bytes libcurl
        #: will deliver again that were fed to the decoder already (see _on_coded).
        self.inflating: Iterator[bytes] | None = None
        self.skip = 0
        self.unpausing: asyncio.Handle | None = None
        self.received = 0
        self.on_done: OnDone | None = None
        #: The final head, joined and lower-cased, once something searched it (_searchable).
        self.searchable: tuple[bytes, bytes] | None = None

    def prepare(self, request: Request, headers: _HeaderLists) -> None:
        curl = self.curl
        # Ready for the next transfer (detach() already emptied the buffer and dropped the
        # waiter; the head's status, version and bounds are set before anything reads them).
        self.done = self.head_seen = self.unbuffered = self.paused = self.held = False
        self.request = request
        self.failure = self.body_error = self.response = None
        self.tls_line = self.sink = self.decoder = self.inflating = None
        self.skip = 0
        self.head_lines.clear()
        self.received = 0
        method, body = request.method, request.body
        if method != self.method[0] or (body is not None) is not self.method[1]:
            self._set_method(method, body)
            self.method = (method, body is not None)
        elif body is not None:
            curl.setopt(pycurl.POSTFIELDS, body)
        if request.pin is not None:
            host, port = _host_port(request.url)
            target = f"[{request.pin}]" if ":" in request.pin else request.pin
            curl.setopt(pycurl.CONNECT_TO, [f"{host}:{port}:{target}:{port}"])
            self.pinned = True
        elif self.pinned:
            curl.setopt(pycurl.CONNECT_TO, [])
            self.pinned = False
        if request.deadline is None:
            timeout_ms = 0  # none
        else:
            timeout_ms = max(1, round((request.deadline - self.engine._loop.time()) * 1000))
        if timeout_ms != self.timeout_ms:
            curl.setopt(pycurl.TIMEOUT_MS, timeout_ms)
            self.timeout_ms = timeout_ms
        curl.setopt(pycurl.URL, request.url)
        server_headers, proxy_headers = headers
        # Every request of a plain run shares one list (CurlEngine._header_list): set once.
        if server_headers is not self.server_headers:
            curl.setopt(pycurl.HTTPHEADER, server_headers)
            self.server_headers = server_headers
        if proxy_headers is not self.proxy_headers:
            curl.setopt(pycurl.PROXYHEADER, proxy_headers)
            self.proxy_headers = proxy_headers

    def _set_method(self, method: str, body: bytes | None) -> None:
        curl = self.curl
        curl.setopt(pycurl.HTTPGET, 1)  # clears NOBODY and POST left by an earlier request
        curl.unsetopt(pycurl.CUSTOMREQUEST)
        if method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
            return
        if body is not None:
            curl.setopt(pycurl.POSTFIELDS, body)  # switches libcurl to POST
        if (method != "GET" or body is not None) and not (method == "POST" and body is not None):
            curl.setopt(pycurl.CUSTOMREQUEST, method)

    # Called by libcurl, inside socket_action: record state, never call libcurl. Header lines
    # go straight into ``head_lines`` (HEADERFUNCTION is its ``append``: no Python per line).

    def _head_arrived(self) -> None:
        """The first body bytes (or the end of the transfer): the final head is complete."""
        self.head_seen = True
        lines = self.head_lines
        start, end = _final_head(lines)
        self.head_start, self.head_end = start, end
        if start < len(lines):
            status_line = lines[start]
            version = status_line.split(b" ", 1)[0]
            self.http_version = _VERSIONS.get(version) or version.decode("latin-1")
            self.status = _status_code(status_line[len(version) + 1 :])
        else:
            self.http_version, self.status = "", 0
        if not self.status:
            # libcurl reads the first three digits of "200000" or "2xx" as a status: not HTTP.
            shown = lines[start][:80] if start < len(lines) else b""
            self.body_error = self.failure = BadResponse(f"malformed status line: {shown!r}")
        limit = self.engine._max_size
        if self.method[0] == "HEAD":
            self.searchable = None  # made by the response if a header is asked for
        else:
            # The response searches the same copy (Content-Type): the head is joined once.
            self.searchable = searchable = _searchable(lines[start:end])
            self.decoder = Decoder.of(_value_in(searchable, "content-encoding"))
            declared = "" if limit is None else _value_in(searchable, "content-length") or ""
            if declared.isdigit() and int(declared) > limit and self.failure is None:  # type: ignore[operator]
                # Refused before reading: the transfer stops at once.
                self.body_error = TooLarge(f"Content-Length {declared} is over --max-size {limit}")
        head = self.head
        if head is None:
            if self.status in self.ask_for:
                self._asked_head()
        elif not head.done():
            if self.failure is not None:
                head.set_exception(self.failure)
            else:
                head.set_result(None)

    def _asked_head(self) -> None:
        """A transfer's head, of a status it was asked about: is the body wanted?"""
        assert self.on_head is not None
        if self.tls_line is not None and self.engine._tls_wanted:
            # This transfer made a TLS connection: note what it showed before other transfers
            # (HTTP/2 streams) reuse it (getinfo only: allowed inside libcurl's callbacks).
            self.engine.tls_details(self)
        self.response = response = _TransferResponse(self)
        try:
            wanted = self.on_head(response)
        except Exception as exc:  # told through done, as any failure (pycurl would swallow it)
            self.body_error = self.failure = exc  # type: ignore[assignment]
            return
        if wanted is False:
            # The transfer stops (a declared --max-size excess no longer matters: nothing more
            # is read); finish() says it succeeded.
            self.body_error = _NOT_WANTED
        elif wanted is not True:
            self.sink = wanted  # each piece goes there as libcurl delivers it

    def _on_body(self, data: bytes) -> int | None:
        if not self.head_seen:
            self._head_arrived()
        if self.body_error is not None:
            return 0  # aborts the transfer (libcurl reports a write error)
        if self.held or (not self.unbuffered and self.buffered >= _BUFFER_LIMIT):
            self.paused = True  # libcurl delivers the same bytes again on unpause
            return _PAUSE
        if self.decoder is None:
            return self._take(data)
        return self._on_coded(data)

    def _on_coded(self, data: bytes) -> int | None:
        """Compressed body bytes: inflated and taken, at most PIECES_PER_TURN pieces a turn.
        Past that the transfer pauses with the rest pending here, and goes on next turn: one
        16 KiB read of a gzip bomb is 16 MiB, too long a callback to run at once."""
        assert self.decoder is not None
        delivered = len(data)
        skip = self.skip
        if skip:
            # libcurl delivers again what it held at the pause: those bytes were fed already.
            self.skip = max(0, skip - delivered)
            data = data[skip:]
        fresh = self.decoder.feed(data)
        pieces = fresh if self.inflating is None else itertools.chain(self.inflating, fresh)
        self.inflating = None
        try:
            for count, piece in enumerate(pieces, 1):
                if self._take(piece) is not None:
                    return 0
                if count == PIECES_PER_TURN or self.held:
                    self.inflating = pieces
                    # All of this delivery is fed (and whatever after it was, if it was a
                    # delivery again): libcurl will deliver it again.
                    self.skip += delivered
                    self.paused = True
                    if self.unbuffered and not self.held:
                        # No reader or sink to resume it: the next turn does.
                        self.unpausing = self.engine._loop.call_soon(self._unpause)
                    return _PAUSE
        except BadResponse as exc:  # not gzip or deflate after all
            self.body_error = exc
            return 0
        return None

    def _unpause(self) -> None:
        self.unpausing = None
        if self.paused and not self.done and not self.held:
            self.paused = False
            # libcurl may deliver the held data from inside this call: _on_body only records.
            with contextlib.suppress(pycurl.error):
                self.curl.pause(pycurl.PAUSE_CONT)

    def _take(self, data: bytes) -> int | None:
        """A piece of the decoded body: counted, then given to the sink or buffered."""
        size = len(data)
        limit = self.engine._max_size
        if limit is not None and self.received + size > limit:
            self.body_error = TooLarge(f"body is over --max-size {limit} bytes")
            return 0
        self.received += size
        if self.unbuffered:
            sink = self.sink
            if sink is not None:
                try:
                    if sink(data):
                        self.held = True  # until resume(): the next delivery pauses
                except Exception as exc:  # told through on_done (pycurl would swallow it)
                    self.body_error = exc  # type: ignore[assignment]
                    return 0
            return None
        self.buffer.append(data)
        self.buffered += size
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return None

    def _on_debug(self, kind: int, data: bytes) -> None:
        if kind == _INFOTYPE_TEXT and data.startswith(b"SSL connection using "):
            self.tls_line = data

    # Called by the engine after socket_action.

    def finish(self, result: tuple[int, str] | None) -> None:
        self.done = True
        if result is not None:
            code, message = result
            if self.body_error is _NOT_WANTED:
                pass  # stopped on purpose after the head (a redirect to follow)
            elif self.body_error is not None:
                self.failure = self.body_error
            else:
                lines = self.head_lines
                # Before any server head: a refused CONNECT leaves the proxy's head in lines.
                at_proxy = not self.head_seen and self._failed_at_proxy(code, message)
                complete = self.head_seen or (bool(lines) and lines[-1] in (b"\r\n", b"\n"))
                self.failure = _error(code, message, head_seen=complete, at_proxy=at_proxy)
        elif not self.head_seen:
            lines = self.head_lines
            # Complete when the final head's blank line came (trailers may follow it).
            if lines and _final_head(lines)[1] < len(lines):
                self._head_arrived()  # a response without a body (HEAD, 204, 304...)
            elif lines:
                # libcurl takes a head the server closed before its blank line as a whole
                # response: nothing complete arrived, a lost connection as httpx says it.
                self.failure = CurlError(
                    52, "the server closed the connection inside the head", "reset"
                )
            else:
                self.failure = BadResponse("the transfer ended without a response head")
        if result is None and self.decoder is not None and self.failure is None:
            try:
                self.decoder.finish()  # the compressed stream must have ended too
            except BadResponse as exc:
                self.failure = exc
        head = self.head
        if head is None:
            assert self.on_done is not None
            self.engine._transfer_over(self, self.on_done)
            return
        if not head.done():
            if self.failure is not None:
                head.set_exception(self.failure)
            else:
                head.set_result(None)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The transfer's handle (afetch.engine.base.Transfer), until on_done is told.

    def resume(self) -> None:
        """The sink that held the transfer is ready for more."""
        self.held = False
        if self.paused and not self.done and self.unpausing is None:
            self.unpausing = self.engine._loop.call_soon(self._unpause)

    def cancel(self) -> None:
        self.engine.release(self)

    def used_proxy(self) -> bool:
        """Whether a proxy applied to this transfer (--proxy or the environment, less noproxy)."""
        if _USED_PROXY is None:  # pragma: no cover - libcurl before 8.7
            return bool(self.engine._settings.proxy)
        return bool(self.curl.getinfo(_USED_PROXY))

    def _failed_at_proxy(self, code: int, message: str) -> bool:
        """libcurl reports a proxy it cannot reach, or a tunnel the proxy refuses (CONNECT
        answered 407, 403, 502...), under generic codes: 7 as an unreachable server would be."""
        if code in (5, 97) or not self.used_proxy():
            return False  # 5 and 97 are "proxy" already
        return (
            code == 7
            or self.curl.getinfo(pycurl.HTTP_CONNECTCODE) >= 300
            or message.startswith("Proxy CONNECT")  # the proxy hung up on the CONNECT
        )

    def detach(self) -> None:
        """The transfer is over for the caller: drop what it buffered."""
        self.buffer.clear()
        self.buffered = 0
        self.inflating = None
        if self.unpausing is not None:
            self.unpausing.cancel()
            self.unpausing = None
        self.waiter = None
        self.on_head = self.on_done = None
        head = self.head
        if head is None:
            return
        self.head = None
        if not head.done():
            head.cancel()
        elif not head.cancelled():
            head.exception()  # retrieved: no "exception was never retrieved" warning

    # Used by the response (and by send, on failure), before the handle is released.

    def transfer_info(self) -> TransferInfo:
        """``--include`` timings and remote, and tls when wanted, from libcurl's getinfo."""
        getinfo = self.curl.getinfo
        https = (getinfo(pycurl.SCHEME) or "").lower() == "https"
        first_byte = getinfo(pycurl.STARTTRANSFER_TIME_T)
        connect = getinfo(pycurl.CONNECT_TIME_T)
        if getinfo(pycurl.NUM_CONNECTS) == 0 and first_byte:
            dns = connect = tls = 0  # a reused connection: no look-up, connect or handshake
        else:
            dns = getinfo(pycurl.NAMELOOKUP_TIME_T)
            tls = getinfo(pycurl.APPCONNECT_TIME_T)
        timings = {
            "dns": dns / 1000,
            "connect": connect / 1000,
            "tls": tls / 1000 if https else None,
            "first_byte": first_byte / 1000 if self.head_seen else None,
            "total": getinfo(pycurl.TOTAL_TIME_T) / 1000,
        }
        ip = getinfo(pycurl.PRIMARY_IP)
        remote = {"ip": ip, "port": getinfo(pycurl.PRIMARY_PORT)} if ip else None
        tls_info = None
        if https and self.engine._tls_wanted:
            details = self.engine.tls_details(self)
            tls_info = None if details is None else details.record()
        return TransferInfo(timings=timings, remote=remote, tls=tls_info)

    # Used by the response.

    async def wait(self) -> None:
        """Until more body is buffered or the transfer is done."""
        self.waiter = waiter = self.engine._loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None


def _header_lines(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Request headers in libcurl's "Name: value" form ("Name;" sends an empty value: "Name:"
    would remove it). A line break or NUL in one is refused: libcurl would send "A: x\r\nB: y"
    as two headers, a header injection."""
    lines = [f"{name}: {value}" if value else f"{name};" for name, value in pairs]
    if _UNSENDABLE.search("".join(lines)):  # one search: --cache sends two lines per request
        for name, value in pairs:
            if _UNSENDABLE.search(name) or _UNSENDABLE.search(value):
                raise BadHeader(f"header {name[:60]!r} has a line break or NUL: not sent")
    return lines


def _no_certificate(exc: BaseException, info: TransferInfo) -> bool:
    if getattr(exc, "error_type", None) != "tls" or info.remote is None:
        return False
    return info.tls is None or info.tls["subject"] is None


def _tls_probe(
    request: Request, timeout: float, settings: Settings | None = None, cainfo: str = ""
) -> TlsDetails | None:
    """Connect and handshake without verifying (no HTTP request): what certificate does the
    server show? Through the run's proxy, if any. Blocking: run in a thread. ``None`` when there
    is no handshake to see."""
    from afetch.engine.tls import TlsDetails

    line: list[bytes] = []

    def on_debug(kind: int, data: bytes) -> None:
        if kind == _INFOTYPE_TEXT and data.startswith(b"SSL connection using "):
            line.append(data)

    curl = pycurl.Curl()
    try:
        curl.setopt(pycurl.URL, request.url)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.CONNECT_ONLY, 1)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        curl.setopt(pycurl.OPT_CERTINFO, 1)
        curl.setopt(pycurl.VERBOSE, 1)
        curl.setopt(pycurl.DEBUGFUNCTION, on_debug)
        curl.setopt(pycurl.TIMEOUT_MS, max(1, round(timeout * 1000)))
        if settings is not None:
            _set_proxy(curl, settings, cainfo)
        if request.pin is not None:  # the address --no-private checked, as for the request
            host, port = _host_port(request.url)
            target = f"[{request.pin}]" if ":" in request.pin else request.pin
            curl.setopt(pycurl.CONNECT_TO, [f"{host}:{port}:{target}:{port}"])
        curl.perform()
        details = TlsDetails.from_curl(
            line[0] if line else None, curl.getinfo(pycurl.INFO_CERTINFO)
        )
    except pycurl.error:
        return None
    finally:
        curl.close()
    return details if details.has_certificate else None


def _certifi_bundle() -> str:
    """certifi's CA bundle. Found next to its module without importing certifi, whose
    ``where()`` loads importlib.resources (~5 ms of every run's start-up)."""
    spec = importlib.util.find_spec("certifi")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(folder, "cacert.pem")
        if os.path.isfile(path):
            return path
    import certifi  # a layout of its own (zipped, say): ask it

    return certifi.where()


#: The headers of a request: (to the server, to the proxy), in libcurl's "Name: value" form.
_HeaderLists = tuple[list[str], list[str]]


def _http_version(settings: Settings) -> int:
    if settings.http3 and _HAS_HTTP3:
        # As curl's --http3: QUIC first, TCP (h2 or 1.1 over ALPN) if QUIC fails.
        return pycurl.CURL_HTTP_VERSION_3
    return pycurl.CURL_HTTP_VERSION_2TLS if settings.http2 else pycurl.CURL_HTTP_VERSION_1_1


def _set_proxy(curl: pycurl.Curl, settings: Settings, cainfo: str) -> None:
    """Proxy options. Without --proxy libcurl reads http_proxy, HTTPS_PROXY/https_proxy,
    ALL_PROXY/all_proxy and NO_PROXY/no_proxy itself (never HTTP_PROXY: httpoxy)."""
    # Headers set with HTTPHEADER go to the server only, never into a CONNECT request
    # (libcurl's default since 7.42.1; said here because the proxy must not see -H secrets).
    curl.setopt(pycurl.HEADEROPT, pycurl.HEADER_SEPARATE)
    # The proxy's answer to a CONNECT is not the server's head: keep it out of head_lines.
    curl.setopt(_SUPPRESS_CONNECT_HEADERS, 1)
    if settings.proxy is not None:
        curl.setopt(pycurl.PROXY, settings.proxy)  # "" disables the environment's too
    if settings.noproxy is not None:
        curl.setopt(pycurl.NOPROXY, settings.noproxy)
    # An https:// proxy is verified like a server: --cacert or the same bundle, unless -k.
    if settings.verify:
        curl.setopt(pycurl.PROXY_CAINFO, cainfo)
    else:
        curl.setopt(pycurl.PROXY_SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.PROXY_SSL_VERIFYHOST, 0)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


#: The versions of status lines, as records spell them (others are decoded as they come).
_VERSIONS = {
    b"HTTP/1.1": "HTTP/1.1",
    b"HTTP/1.0": "HTTP/1.0",
    b"HTTP/2": "HTTP/2",
    b"HTTP/2.0": "HTTP/2",
    b"HTTP/3": "HTTP/3",
}
_CRLF = b"\r\n"
_LF = b"\n"
_C_OR_c = b"Cc"
_BLANK = (b"\r\n", b"\n")


def _status_code(rest: bytes) -> int:
    """The status code at the start of ``rest`` (the status line after its version), or 0
    when it is not three digits, 100 to 999, followed by a space or the line's end (RFC 9112).

    >>> _status_code(b"200 OK\\r\\n"), _status_code(b"204\\r\\n"), _status_code(b"2000 OK\\r\\n")
    (200, 204, 0)
    """
    code = rest[:3]
    if len(code) < 3 or not code.isdigit() or code[0] == 48 or rest[3:4] not in _STATUS_ENDS:
        return 0
    return int(code)


_STATUS_ENDS = (b" ", b"\r", b"\n", b"")


def _final_head(lines: list[bytes]) -> tuple[int, int]:
    """Where the final head is in the header lines libcurl gave: (index of its status line,
    index of its blank line or ``len(lines)``). 1xx interim heads come before it, each ending in
    a blank line; what follows the final head's blank line are trailers, never a head.

    >>> _final_head([b"HTTP/1.1 103 Early\\r\\n", b"\\r\\n", b"HTTP/1.1 200 OK\\r\\n",
    ...              b"A: b\\r\\n", b"\\r\\n", b"Trailer: x\\r\\n"])
    (2, 4)
    """
    start, count = 0, len(lines)
    while True:
        try:
            end = lines.index(_CRLF, start + 1)  # in C: the usual head ends in CRLF
            if _LF in lines[start + 1 : end]:
                raise ValueError  # a head ending in a bare LF came first
        except ValueError:
            end = start + 1
            while end < count and lines[end] not in _BLANK:
                end += 1
        after = end + 1
        if after < count and lines[after].startswith(b"HTTP/"):
            start = after  # an interim head ended; another head follows
            continue
        return start, end


def _searchable(lines: list[bytes]) -> tuple[bytes, bytes]:
    """A head's lines joined, and lower-cased (ASCII only, so positions hold in both): header
    values are searched for with a few C calls, not line by line in Python."""
    head = b"".join(lines)
    return head, head.lower()


def _value_in(searchable: tuple[bytes, bytes], name: str) -> str | None:
    """The first value of header ``name`` in a :func:`_searchable` head (its status line
    first), without parsing the others: the first line that starts with "name:", in any case.

    >>> _value_in(_searchable([b"HTTP/1.1 200 OK\\r\\n", b"Content-Length: 12 \\r\\n"]),
    ...           "content-length")
    '12'
    """
    key = _SEARCH_KEYS.get(name)
    if key is None:
        # After a line's end: a name at the start of a line (the status line ends with one).
        key = _SEARCH_KEYS[name] = b"\n" + name.lower().encode("latin-1") + b":"
    head, lowered = searchable
    at = lowered.find(key)
    if at < 0:
        return None
    at += len(key)
    stop = head.find(b"\n", at)
    return head[at : None if stop < 0 else stop].decode("latin-1").strip()


_SEARCH_KEYS: dict[str, bytes] = {}


def _parse_headers(lines: list[bytes], start: int) -> Headers:
    headers = Headers()
    for raw in lines[start + 1 :]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return headers


class _CurlResponse:
    __slots__ = ("_headers", "_lines", "_searchable", "_slot", "_start", "http_version", "status")

    def __init__(self, slot: _Slot) -> None:
        self._slot = slot
        self.status = slot.status
        self.http_version = slot.http_version
        # Parsed only if asked for: most records need no header but Content-Type.
        self._lines = slot.head_lines[: slot.head_end]
        self._start = slot.head_start
        self._headers: Headers | None = None
        self._searchable = slot.searchable

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = _parse_headers(self._lines, self._start)
        return self._headers

    @property
    def content_type(self) -> str | None:
        return self.header("content-type")

    def header(self, name: str) -> str | None:
        # Content-Type for every record; ETag and Last-Modified for --cache: the head is
        # joined and lower-cased once for all three.
        searchable = self._searchable
        if searchable is None:
            searchable = self._searchable = _searchable(self._lines[self._start :])
        return _value_in(searchable, name)

    @property
    def bytes_read(self) -> int:
        return self._slot.received

    async def drain(self) -> int:
        slot = self._slot
        slot.unbuffered = True
        slot.buffer.clear()
        slot.buffered = 0
        self._resume()
        while not slot.done:
            await slot.wait()
        if slot.failure is not None:
            raise slot.failure
        return slot.received

    async def pieces(self) -> AsyncIterator[bytes]:
        slot = self._slot
        buffer = slot.buffer
        while True:
            while buffer:
                piece = buffer.popleft()
                slot.buffered -= len(piece)
                yield piece
            if slot.done:
                break
            self._resume()
            # Unpausing can deliver what libcurl held (a compressed body inflates to far more
            # than the buffer limit) from inside the call, before a waiter exists: read it.
            if not buffer:
                await slot.wait()
        if slot.failure is not None:
            raise slot.failure

    def _resume(self) -> None:
        slot = self._slot
        if slot.paused and not slot.done and slot.buffered < _BUFFER_LIMIT:
            slot.paused = False
            # libcurl may deliver the held data from inside this call: _on_body only records.
            with contextlib.suppress(pycurl.error):
                slot.curl.pause(pycurl.PAUSE_CONT)

    def transfer_info(self) -> TransferInfo:
        return self._slot.transfer_info()

    async def aclose(self) -> None:
        self._slot.engine.release(self._slot)


class _TransferResponse(_CurlResponse):
    """The final response of a transfer on callbacks: its body went to the sink or was only
    counted; what the caller may ask later is copied in before the handle is let go."""

    __slots__ = ("bytes_read", "info")

    def __init__(self, slot: _Slot) -> None:
        super().__init__(slot)
        self.bytes_read = 0  # set when the transfer is over
        self.info: TransferInfo | None = None


#: Set as a slot's body error to stop a transfer after its head, on purpose.
_NOT_WANTED = AfetchError("body not wanted")
