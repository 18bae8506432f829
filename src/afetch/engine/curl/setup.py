"""An easy handle's setup: the options every transfer shares (protocols, TLS, proxy, timeouts,
decoding), request headers in libcurl's form, and the unverified TLS probe of --include tls."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pycurl

from afetch._settings import Settings
from afetch.engine.base import Request, TransferInfo
from afetch.engine.curl.errors import BadHeader
from afetch.engine.decode import ACCEPT_ENCODING

if TYPE_CHECKING:
    from afetch.engine.tls import TlsDetails

_INFOTYPE_TEXT = pycurl.INFOTYPE_TEXT
_HTTP_ONLY = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
#: Whether this libcurl speaks HTTP/3 (else --http3 means what --http2 does).
_HAS_HTTP3 = bool(pycurl.version_info()[4] & getattr(pycurl, "VERSION_HTTP3", 0))
#: CURLOPT_SUPPRESS_CONNECT_HEADERS (libcurl 7.54), which pycurl does not name.
_SUPPRESS_CONNECT_HEADERS = getattr(pycurl, "SUPPRESS_CONNECT_HEADERS", 265)
_UNSENDABLE = re.compile(r"[\r\n\0]")
#: Where libcurl looks for a proxy without --proxy (and more: HTTP_PROXY it never uses).
_PROXY_ENVIRONMENT = tuple(
    case(f"{scheme}_proxy")
    for scheme in ("http", "https", "all", "no")
    for case in (str.lower, str.upper)
)


#: The proxy and the no-proxy list a run's handles tell libcurl (None: not told).
Proxy = tuple[str | None, str | None]


def new_handle(
    settings: Settings,
    cainfo: str,
    *,
    proxy: Proxy,
    on_debug: Callable[[int, bytes], None] | None,
    on_head_line: Callable[[bytes], object],
    on_body: Callable[[bytes], int | None],
    share: pycurl.CurlShare | None = None,
) -> pycurl.Curl:
    """An easy handle with the options every transfer of a run shares."""
    curl = pycurl.Curl()
    if share is not None:
        curl.setopt(pycurl.SHARE, share)
    curl.setopt(pycurl.NOSIGNAL, 1)
    # Kept until the engine's sweep (dns.DnsCache): with a timeout, libcurl walks
    # its whole DNS cache at the end of every transfer, one entry per host seen in the last
    # minute (20,000 URLs over 10,000 hosts: 55 % of the run's CPU).
    curl.setopt(pycurl.DNS_CACHE_TIMEOUT, -1)
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
        curl.setopt(pycurl.CAINFO, cainfo)
    else:
        curl.setopt(pycurl.SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.SSL_VERIFYHOST, 0)
    _set_proxy(curl, proxy, settings, cainfo)
    connect = settings.connect_timeout or settings.timeout
    if connect is not None:
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, round(connect * 1000)))
    if on_debug is not None:
        # Collect.tls: the certificate chain of each new connection, and libcurl's
        # "SSL connection using VERSION / CIPHER" line (only ever told to the debug hook).
        # No TLS session reuse, so that every new connection shows its certificate.
        curl.setopt(pycurl.OPT_CERTINFO, 1)
        curl.setopt(pycurl.SSL_SESSIONID_CACHE, 0)
        curl.setopt(pycurl.VERBOSE, 1)
        curl.setopt(pycurl.DEBUGFUNCTION, on_debug)
    curl.setopt(pycurl.HEADERFUNCTION, on_head_line)
    curl.setopt(pycurl.WRITEFUNCTION, on_body)
    return curl


def set_method(curl: pycurl.Curl, method: str, body: bytes | None) -> None:
    """Set the request's method (and body) on a handle that kept an earlier request's."""
    curl.setopt(pycurl.HTTPGET, 1)  # clears NOBODY and POST left by an earlier request
    curl.unsetopt(pycurl.CUSTOMREQUEST)
    if method == "HEAD":
        curl.setopt(pycurl.NOBODY, 1)
        return
    if body is not None:
        curl.setopt(pycurl.POSTFIELDS, body)  # switches libcurl to POST
    if (method != "GET" or body is not None) and not (method == "POST" and body is not None):
        curl.setopt(pycurl.CUSTOMREQUEST, method)


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
            _set_proxy(curl, proxy_options(settings), settings, cainfo)
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


def proxy_options(settings: Settings) -> Proxy:
    """The proxy options of a run's handles: ``--proxy`` and ``--noproxy``, or, with neither
    and no proxy in the environment, none at all. Read once per run: looking through the
    environment cost each new handle ~15 µs (8 ms of the first 500 requests at -c 500)."""
    proxy, noproxy = settings.proxy, settings.noproxy
    if proxy is None and not any(name in os.environ for name in _PROXY_ENVIRONMENT):
        # No proxy in the environment either: said once per handle, or libcurl looks for one
        # with half a dozen getenv calls on every request.
        proxy = ""
        noproxy = "" if noproxy is None else noproxy
    return proxy, noproxy


def _set_proxy(curl: pycurl.Curl, options: Proxy, settings: Settings, cainfo: str) -> None:
    """Proxy options (``options``: :func:`proxy_options`). Without --proxy libcurl reads
    http_proxy, HTTPS_PROXY/https_proxy, ALL_PROXY/all_proxy and NO_PROXY/no_proxy itself
    (never HTTP_PROXY: httpoxy)."""
    # Headers set with HTTPHEADER go to the server only, never into a CONNECT request
    # (libcurl's default since 7.42.1; said here because the proxy must not see -H secrets).
    curl.setopt(pycurl.HEADEROPT, pycurl.HEADER_SEPARATE)
    # The proxy's answer to a CONNECT is not the server's head: keep it out of head_lines.
    curl.setopt(_SUPPRESS_CONNECT_HEADERS, 1)
    proxy, noproxy = options
    if proxy is not None:
        curl.setopt(pycurl.PROXY, proxy)  # "" disables the environment's too
    if noproxy is not None:
        curl.setopt(pycurl.NOPROXY, noproxy)
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
