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
from dataclasses import dataclass
from typing import Any

from afetch._redact import excerpt


class ErrorTrait(enum.Flag):
    """What afetch does after an attempt that failed with an error type (see :class:`ErrorType`)."""

    #: Worth another try (``--retries``) for a method safe to repeat: the connection failed or
    #: was lost, and the server may recover (afetch.schedule.retry).
    RETRY = enum.auto()
    #: The request surely was not sent (the connection never opened): retried whatever the
    #: method, POST and PATCH included. After a response, a reset or a timeout the server may
    #: have acted on it, and a second try could do it twice (afetch.schedule.retry).
    NOT_SENT = enum.auto()
    #: The host did not talk HTTP with us at all: ``--max-host-errors`` of them in a row mark it
    #: unreachable (afetch.schedule.hosts).
    CONNECTION_FAILURE = enum.auto()
    #: The host could not keep up: ``--per-host auto`` halves its limit (afetch.schedule.autolimit).
    OVERLOAD = enum.auto()
    #: Settled without asking the server again: the same request meets the same end, so
    #: ``--confirm`` does not try it once more (afetch.schedule.confirm).
    SETTLED = enum.auto()


_NO_TRAITS = ErrorTrait(0)


@enum.unique
class ErrorType(enum.StrEnum):
    """Every error type a record can carry, with its traits: the one table of them. A new type is
    one member here and one row in docs/records.md (tests/test_docs.py checks both ways). Members
    are the strings themselves: ``ErrorType.DNS == "dns"``, and JSON writes them as such.

    >>> ErrorTrait.NOT_SENT in ErrorType.CONNECT.traits, ErrorTrait.RETRY in ErrorType.DNS.traits
    (True, False)
    """

    traits: ErrorTrait

    def __new__(cls, value: str, traits: ErrorTrait = _NO_TRAITS) -> ErrorType:
        member = str.__new__(cls, value)
        member._value_ = value
        member.traits = traits
        return member

    INVALID_URL = "invalid_url", ErrorTrait.SETTLED
    INVALID_INPUT = "invalid_input", ErrorTrait.SETTLED
    # Not retried: usually a permanent NXDOMAIN.
    DNS = "dns", ErrorTrait.CONNECTION_FAILURE
    CONNECT = "connect", ErrorTrait.RETRY | ErrorTrait.NOT_SENT | ErrorTrait.CONNECTION_FAILURE
    PROXY = "proxy"
    # Not retried: a bad certificate stays bad.
    TLS = "tls", ErrorTrait.CONNECTION_FAILURE
    # A connection failure too: a host that accepts and never answers is as useless as one that
    # refuses, and costs a whole --timeout per URL.
    TIMEOUT = "timeout", ErrorTrait.RETRY | ErrorTrait.CONNECTION_FAILURE | ErrorTrait.OVERLOAD
    RESET = "reset", ErrorTrait.RETRY | ErrorTrait.CONNECTION_FAILURE | ErrorTrait.OVERLOAD
    # Not retried: a server sending garbage keeps sending it.
    PROTOCOL = "protocol"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    BLOCKED = "blocked", ErrorTrait.SETTLED
    # Settled by --max-host-errors: the run gave up on its host.
    HOST_UNREACHABLE = "host_unreachable", ErrorTrait.SETTLED
    SAVE = "save"
    OTHER = "other"


def error_types_with(trait: ErrorTrait) -> frozenset[str]:
    """The error types (plain strings, as records carry them) that have ``trait``.

    >>> sorted(error_types_with(ErrorTrait.OVERLOAD))
    ['reset', 'timeout']
    """
    return frozenset(str(kind) for kind in ErrorType if trait in kind.traits)


@dataclass(frozen=True, slots=True)
class FetchError:
    """Why a URL could not be fetched: a record's ``error``. ``type`` is one of the documented
    error types."""

    type: str
    message: str


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
