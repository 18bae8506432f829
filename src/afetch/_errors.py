"""Turning exceptions into the documented error types.

Classification looks at the whole exception chain, so it works whatever transport sits behind
httpx (httpcore raises httpx exceptions wrapping OS errors; other transports wrap their own).
"""

from __future__ import annotations

import enum
import errno
import socket
import ssl
import sys
from collections.abc import Iterable
from typing import Any

from afetch._record import FetchError
from afetch._redact import excerpt


class ErrorType(enum.StrEnum):
    """Every error type a record can carry (docs/records.md). Members are the strings
    themselves: ``ErrorType.DNS == "dns"``, and JSON writes them as such."""

    INVALID_URL = "invalid_url"
    INVALID_INPUT = "invalid_input"
    DNS = "dns"
    CONNECT = "connect"
    PROXY = "proxy"
    TLS = "tls"
    TIMEOUT = "timeout"
    RESET = "reset"
    PROTOCOL = "protocol"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    BLOCKED = "blocked"
    HOST_UNREACHABLE = "host_unreachable"
    SAVE = "save"
    OTHER = "other"


#: The error types in documentation order, as plain strings.
ERROR_TYPES = tuple(str(kind) for kind in ErrorType)

_MAX_MESSAGE = 300
_DNS_HINTS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "getaddrinfo",
    "name resolution",
    "cannot resolve",
)
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}
# Transport-specific exceptions, matched by class name so no transport needs importing here.
_BY_CLASS_NAME = {
    "ClientConnectorDNSError": "dns",
    "ClientConnectorCertificateError": "tls",
    "ClientSSLError": "tls",
    # Closed before any response (a keep-alive connection the server had just dropped, say):
    # nothing was processed, so it is a lost connection, retried like a reset.
    "ServerDisconnectedError": "reset",
    "ClientPayloadError": "protocol",
    "ContentLengthError": "protocol",
    "TransferEncodingError": "protocol",
    "ClientResponseError": "protocol",
    "ServerTimeoutError": "timeout",
    "ClientConnectorError": "connect",
}


class AfetchError(Exception):
    """An outcome afetch itself decides; ``error_type`` names it in the record."""

    error_type: str = ErrorType.OTHER


class InvalidURL(AfetchError):
    error_type: str = ErrorType.INVALID_URL


class InvalidInput(AfetchError):
    """An input line starting with ``{`` that is not a valid request object."""

    error_type: str = ErrorType.INVALID_INPUT


class TooManyRedirects(AfetchError):
    error_type: str = ErrorType.TOO_MANY_REDIRECTS


class TooLarge(AfetchError):
    error_type: str = ErrorType.TOO_LARGE


class BadResponse(AfetchError):
    """The server broke HTTP: an undecodable body, or a body cut short."""

    error_type: str = ErrorType.PROTOCOL


class ProxyError(AfetchError):
    """The proxy could not be reached, refused the request or asked for credentials."""

    error_type: str = ErrorType.PROXY


class Blocked(AfetchError):
    """``--no-private`` refused the address a host resolves to."""

    error_type: str = ErrorType.BLOCKED


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _type_of(exc: BaseException) -> str:
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, AfetchError):
            return item.error_type
    for item in chain:
        if isinstance(item, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(item, socket.gaierror):
            return "dns"
        for cls in type(item).__mro__:
            found = _BY_CLASS_NAME.get(cls.__name__)
            if found:
                return found
    # Before the timeout check: some transports wrap a reset in a timeout type (httpx-aiohttp
    # maps aiohttp's ClientOSError to httpx.ConnectTimeout).
    if any(isinstance(i, OSError) and i.errno in _RESET_ERRNOS for i in chain):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    # httpx's exceptions can only come from an httpx transport, and then httpx is loaded: a run
    # on libcurl never imports it just to classify.
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        found = _httpx_type(exc, httpx, chain)
        if found is not None:
            return found
    if isinstance(exc, ConnectionRefusedError):
        return "connect"
    return "other"


def _httpx_type(exc: BaseException, httpx: Any, chain: list[BaseException]) -> str | None:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    text = " ".join(str(i) for i in chain).lower()
    if isinstance(exc, httpx.ConnectError):
        if any(hint in text for hint in _DNS_HINTS):
            return "dns"
        if "ssl" in text or "certificate" in text:
            return "tls"
        return "connect"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "reset" if "reset" in text else "protocol"
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError):
        # httpcore's word for the same thing as aiohttp's ServerDisconnectedError above.
        return "reset" if "disconnected without sending a response" in text else "protocol"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid_url"
    return None


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> FetchError:
    """Describe ``exc`` as a record error, its message redacted (URL passwords and ``secrets``)
    before it is cut.

    >>> classify(TooManyRedirects("stopped after 10 redirects")).type
    'too_many_redirects'
    """
    # Wrappers often have an empty message (httpx.ReadError()); the cause says what happened.
    message = next((text for i in _chain(exc) if (text := str(i).strip())), type(exc).__name__)
    return FetchError(str(_type_of(exc)), excerpt(message, _MAX_MESSAGE, secrets))
