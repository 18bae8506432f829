"""What the caller is told of a libcurl transfer: the final head (parsed only if asked), and
what was read before the handle was let go (bytes, ``--include`` info)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pycurl

from afetch.engine.base import Headers, TransferInfo
from afetch.engine.curl.head import _parse_headers, _search_key, _value_at, _value_in

if TYPE_CHECKING:
    from afetch.engine.tls import TlsDetails


class _TlsSource(Protocol):
    """What :func:`read_info` asks of the engine (CurlEngine, two floors up)."""

    _tls_wanted: bool

    def tls_details(self, slot: Any) -> TlsDetails | None: ...


class _Slot(Protocol):
    """What the response reads of its transfer (transfer._Transfer): named here, not imported,
    since the transfer is the floor above (pyproject.toml's contract inside engine.curl)."""

    curl: pycurl.Curl
    status: int
    http_version: str
    head_seen: bool
    searchable: tuple[str, str] | None

    @property
    def engine(self) -> _TlsSource: ...


class _CurlResponse:
    """The final response of a transfer (:class:`afetch.engine.base.Response`)."""

    __slots__ = (
        "_head",
        "_headers",
        "bytes_read",
        "content_type",
        "http_version",
        "info",
        "status",
    )

    def __init__(self, slot: _Slot) -> None:
        self.status = slot.status
        self.http_version = slot.http_version
        # The final head as the transfer joined it (its text, lower-cased too): headers are
        # parsed only if asked for; most records need no header but Content-Type, searched for
        # at once.
        self._head = head = slot.searchable
        assert head is not None  # a response is made once the head came
        self._headers: Headers | None = None
        self.content_type = _value_at(head, _TYPE_KEY)
        self.bytes_read = 0  # set when the transfer is over
        self.info: TransferInfo | None = None  # --include: set when the transfer is over

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = _parse_headers(self._head[0])
        return self._headers

    def header(self, name: str) -> str | None:
        # ETag and Last-Modified for --cache, Location for a redirect: one search of the head.
        return _value_in(self._head, name)


#: What _value_at looks for to find the Content-Type.
_TYPE_KEY = _search_key("content-type")


def read_info(slot: _Slot) -> TransferInfo:
    """Timings and remote, and tls when collected, from libcurl's getinfo."""
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
