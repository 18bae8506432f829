"""What the caller is handed of a libcurl transfer: the final head (parsed only if asked), the
body read piece by piece (``send``), or, on callbacks, what was read before the handle was let
go."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pycurl

from afetch.engine.base import Headers, TransferInfo
from afetch.engine.curl.head import _parse_headers, _searchable, _value_in

if TYPE_CHECKING:
    from afetch.engine.curl.transfer import _Transfer

#: A body buffered beyond this many bytes, not yet read, pauses the transfer.
_BUFFER_LIMIT = 1 << 20


class _CurlResponse:
    __slots__ = ("_headers", "_lines", "_searchable", "_slot", "_start", "http_version", "status")

    def __init__(self, slot: _Transfer) -> None:
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

    def __init__(self, slot: _Transfer) -> None:
        super().__init__(slot)
        self.bytes_read = 0  # set when the transfer is over
        self.info: TransferInfo | None = None


def read_info(slot: _Transfer) -> TransferInfo:
    """``--include`` timings and remote, and tls when wanted, from libcurl's getinfo."""
    getinfo = slot.curl.getinfo
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
        "first_byte": first_byte / 1000 if slot.head_seen else None,
        "total": getinfo(pycurl.TOTAL_TIME_T) / 1000,
    }
    ip = getinfo(pycurl.PRIMARY_IP)
    remote = {"ip": ip, "port": getinfo(pycurl.PRIMARY_PORT)} if ip else None
    tls_info = None
    if https and slot.engine._tls_wanted:
        details = slot.engine.tls_details(slot)
        tls_info = None if details is None else details.record()
    return TransferInfo(timings=timings, remote=remote, tls=tls_info)
