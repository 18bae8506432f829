"""One transfer on libcurl: an easy handle and the state of what it is running (head, body
delivery with pause and resume, decoding, the end), reused across requests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Container, Iterator
from typing import TYPE_CHECKING, Protocol

import pycurl

from afetch._errors import AfetchError, BadResponse, TooLarge
from afetch.engine.base import BodySink, OnDone, OnHead, Request, TransferInfo
from afetch.engine.curl.errors import CurlError, _error
from afetch.engine.curl.head import (
    STATUS_LINES,
    _final_head,
    _search_key,
    _searchable,
    _single_head,
    _status_line,
    _value_in,
)
from afetch.engine.curl.response import _CurlResponse, read_info
from afetch.engine.curl.setup import _INFOTYPE_TEXT, Proxy, _host_port, new_handle, set_method
from afetch.engine.decode import PIECES_PER_TURN, Decoder

if TYPE_CHECKING:
    from afetch._settings import Settings
    from afetch.engine.curl.setup import _HeaderLists
    from afetch.engine.tls import TlsDetails

_PAUSE = pycurl.WRITEFUNC_PAUSE
#: CURLINFO_USED_PROXY (libcurl 8.7): whether a proxy applied to the transfer.
_USED_PROXY = getattr(pycurl, "USED_PROXY", None)
#: What _value_in looks for to find a Content-Encoding.
_CODING_KEY = _search_key("content-encoding")
#: Set as a slot's body error to stop a transfer after its head, on purpose.
_NOT_WANTED = AfetchError("body not wanted")


class _Owner(Protocol):
    """What a transfer uses of the engine that owns it (CurlEngine): named here, not imported,
    since the engine is the floor above (pyproject.toml's contract inside engine.curl)."""

    _settings: Settings
    _cainfo: str
    _proxy: Proxy
    _tls_wanted: bool
    _share: pycurl.CurlShare | None
    _max_size: int | None
    _loop: asyncio.AbstractEventLoop
    _slot_of: dict[pycurl.Curl, _Transfer]
    _connect_ms: int

    def _transfer_over(self, slot: _Transfer, on_done: OnDone) -> None: ...
    def release(self, slot: _Transfer) -> None: ...
    def tls_details(self, slot: _Transfer) -> TlsDetails | None: ...


class _Transfer:
    """One easy handle and the state of the transfer it is running; reused across requests."""

    __slots__ = (
        "ask_for",
        "body_error",
        "connect_ms",
        "curl",
        "decoder",
        "deferred",
        "done",
        "engine",
        "failure",
        "head_lines",
        "head_seen",
        "held",
        "http_version",
        "inflating",
        "max_size",
        "method",
        "on_done",
        "on_head",
        "paused",
        "pending",
        "pinned",
        "proxy_headers",
        "received",
        "request",
        "resolves",
        "response",
        "searchable",
        "server_headers",
        "sink",
        "skip",
        "status",
        "sweeps_dns",
        "timeout_ms",
        "tls_line",
        "unpausing",
    )

    def __init__(self, engine: _Owner) -> None:
        self.engine = engine
        settings = engine._settings
        self.max_size = engine._max_size
        self.head_lines: list[bytes] = []
        self.curl = curl = new_handle(
            settings,
            engine._cainfo,
            proxy=engine._proxy,
            on_debug=self._on_debug if engine._tls_wanted else None,
            on_head_line=self.head_lines.append,
            on_body=self._on_body,
            share=engine._share,
        )
        engine._slot_of[curl] = self  # found again from info_read
        self.timeout_ms = -1
        self.method: tuple[str, bool] = ("GET", False)
        self.pinned = False
        #: This handle carries the run's DNS cache sweep (dns.DnsCache).
        self.sweeps_dns = False
        #: This handle carries a line of names looked up ahead (dns.DnsCache).
        self.resolves = False
        #: Its connect timeout in ms as set (shorter after a wait for a lookup; CurlEngine._begin).
        self.connect_ms = engine._connect_ms
        #: A transfer held for its host's lookup: (held since, origin) (CurlEngine._begin_held).
        self.deferred: tuple[float, str] | None = None
        self.pending = False
        self.proxy_headers: list[str] = []
        self.server_headers: list[str] | None = None
        self.status = 0
        self.http_version = "HTTP/1.1"
        self.on_head: OnHead | None = None
        self.ask_for: Container[int] = ()
        #: A transfer's body sink, if its on_head gave one (see OnHead).
        self.sink: BodySink | None = None
        # The state of one transfer, set again by prepare() for each.
        self.done = self.head_seen = self.paused = self.held = False
        self.request: Request | None = None
        self.failure: AfetchError | None = None
        self.body_error: AfetchError | None = None
        self.response: _CurlResponse | None = None
        self.tls_line: bytes | None = None
        self.decoder: Decoder | None = None
        #: Decoded pieces not yet taken when a turn's share ran out, and how many bytes libcurl
        #: will deliver again that were fed to the decoder already (see _on_coded).
        self.inflating: Iterator[bytes] | None = None
        self.skip = 0
        self.unpausing: asyncio.Handle | None = None
        self.received = 0
        self.on_done: OnDone | None = None
        #: The final head, as text and lower-cased, once it came (head._searchable).
        self.searchable: tuple[str, str] | None = None

    def prepare(self, request: Request, headers: _HeaderLists, now: float) -> None:
        """Set the handle up for ``request``, started at ``now`` (the run's clock)."""
        curl = self.curl
        # Ready for the next transfer (release() dropped the callbacks; the head's status,
        # version and bounds are set before anything reads them).
        self.done = self.head_seen = self.paused = self.held = False
        self.request = request
        self.failure = self.body_error = self.response = None
        self.tls_line = self.sink = self.decoder = self.inflating = None
        self.skip = 0
        self.head_lines.clear()
        self.received = 0
        method, url, _, body, pin, deadline = request
        if method != self.method[0] or (body is not None) is not self.method[1]:
            set_method(self.curl, method, body)
            self.method = (method, body is not None)
        elif body is not None:
            curl.setopt(pycurl.POSTFIELDS, body)
        if pin is not None:
            host, port = _host_port(url)
            target = f"[{pin}]" if ":" in pin else pin
            curl.setopt(pycurl.CONNECT_TO, [f"{host}:{port}:{target}:{port}"])
            self.pinned = True
        elif self.pinned:
            curl.setopt(pycurl.CONNECT_TO, [])
            self.pinned = False
        # 0: none.
        timeout_ms = 0 if deadline is None else max(1, round((deadline - now) * 1000))
        if timeout_ms != self.timeout_ms:
            curl.setopt(pycurl.TIMEOUT_MS, timeout_ms)
            self.timeout_ms = timeout_ms
        curl.setopt(pycurl.URL, url)
        server_headers, proxy_headers = headers
        # Every request of a plain run shares one list (CurlEngine._header_list): set once.
        if server_headers is not self.server_headers:
            curl.setopt(pycurl.HTTPHEADER, server_headers)
            self.server_headers = server_headers
        if proxy_headers is not self.proxy_headers:
            curl.setopt(pycurl.PROXYHEADER, proxy_headers)
            self.proxy_headers = proxy_headers

    # Called by libcurl, inside socket_action: record state, never call libcurl. Header lines
    # go straight into ``head_lines`` (HEADERFUNCTION is its ``append``: no Python per line).

    def _head_arrived(self, found: tuple[int, int] | None = None) -> None:
        """The first body bytes (or the end of the transfer): the final head is complete (at
        ``found``, when the caller looked for it already)."""
        self.head_seen = True
        lines = self.head_lines
        # The usual head, the only one: joined as the text searched below, and found so.
        text = None if found is not None else _single_head(lines)
        if text is not None:
            status_line = lines[0]
            searchable = (text, text.lower())
        else:
            start, end = found or _final_head(lines)
            status_line = lines[start] if start < len(lines) else b""
            searchable = _searchable(lines[start:end])
        known = STATUS_LINES.get(status_line)  # the usual case: no call
        self.http_version, self.status = known or (
            _status_line(status_line) if status_line else ("", 0)
        )
        if not self.status:
            # libcurl reads the first three digits of "200000" or "2xx" as a status: not HTTP.
            shown = status_line[:80]
            self.body_error = self.failure = BadResponse(f"malformed status line: {shown!r}")
        # The response searches the same copy (Content-Type): the head is joined once.
        self.searchable = searchable
        if self.method[0] != "HEAD":  # a HEAD's Content-* describe a body it does not have
            # Most bodies have no coding: one search in C says so (prepare() left no decoder).
            if _CODING_KEY in searchable[1]:
                self.decoder = Decoder.of(_value_in(searchable, "content-encoding"))
            limit = self.max_size
            if limit is not None:
                declared = _value_in(searchable, "content-length") or ""
                if declared.isdigit() and int(declared) > limit and self.failure is None:
                    # Refused before reading: the transfer stops at once.
                    self.body_error = TooLarge(
                        f"Content-Length {declared} is over --max-size {limit}"
                    )
        if self.status in self.ask_for:
            self._asked_head()

    def _asked_head(self) -> None:
        """A transfer's head, of a status it was asked about: is the body wanted?"""
        assert self.on_head is not None
        # The TLS details of a connection this transfer made are read when it ends (read_info):
        # pycurl refuses getinfo while libcurl is inside its callbacks, as here.
        self.response = response = _CurlResponse(self)
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
        if self.held:
            self.paused = True  # libcurl delivers the same bytes again on unpause
            return _PAUSE
        if self.decoder is None:
            if self.sink is None and self.max_size is None:
                self.received += len(data)  # only counted: most bodies, no call
                return None
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
                    if not self.held:
                        # Nothing else resumes it: the next turn does.
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
        """A piece of the decoded body: counted, then given to the sink, if any."""
        size = len(data)
        limit = self.max_size
        if limit is not None and self.received + size > limit:
            self.body_error = TooLarge(f"body is over --max-size {limit} bytes")
            return 0
        self.received += size
        sink = self.sink
        if sink is not None:
            try:
                if sink(data):
                    self.held = True  # until resume(): the next delivery pauses
            except Exception as exc:  # told through on_done (pycurl would swallow it)
                self.body_error = exc  # type: ignore[assignment]
                return 0
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
            found = _final_head(lines) if lines else None
            if found is not None and found[1] < len(lines):
                self._head_arrived(found)  # a response without a body (HEAD, 204, 304...)
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
        assert self.on_done is not None
        self.engine._transfer_over(self, self.on_done)

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

    # Used by the response (and by the engine, at a transfer's end), before the handle is
    # released.

    def transfer_info(self) -> TransferInfo:
        """Timings and remote, and tls when collected, from libcurl's getinfo."""
        return read_info(self)
