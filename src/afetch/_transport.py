"""The transport seam: what actually speaks HTTP behind httpx's request and response models.

The core only calls ``transport.handle_async_request``; tests pass ``httpx.MockTransport`` (or a
respx router's handler wrapped in one) and speed work swaps the default here, never in the core.

HTTP/1.1 goes through aiohttp by default: httpcore's pool scans every connection on every
request, which made afetch 17× slower than a plain aiohttp script (README.md, "Performance").
HTTP/2 (``Settings.http2``) stays with httpx's own transport and h2.
"""

from __future__ import annotations

import errno
import os
import ssl
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import aiohttp
import httpx
import yarl

from afetch._settings import Settings
from afetch._tls import tls_verify

# Idle connections are closed after this long, as httpx does by default.
_KEEPALIVE_EXPIRY = 5.0


def default_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The transport ``afetch.fetch`` uses when none is given.

    At most ``settings.concurrency`` connections are open at once; TLS certificates are verified
    unless ``settings.verify`` is false.
    """
    if settings.http2:
        limits = httpx.Limits(
            max_connections=settings.concurrency,
            max_keepalive_connections=settings.concurrency,
        )
        return httpx.AsyncHTTPTransport(
            verify=tls_verify(settings), http2=True, limits=limits, retries=0
        )
    return AiohttpTransport(verify=tls_verify(settings), max_connections=settings.concurrency)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends HTTP/1.x requests through one ``aiohttp.ClientSession``.

    Bodies are streamed raw, never decoded here (``afetch._body`` decodes them in bounded
    pieces), and aiohttp's exceptions are re-raised as the matching httpx exceptions with the
    original as ``__cause__``, so ``afetch._errors.classify`` sees both.

    >>> import asyncio
    >>> from afetch._loopback import LoopbackServer
    >>> async def status(url):
    ...     transport = AiohttpTransport(max_connections=2)
    ...     response = await transport.handle_async_request(httpx.Request("GET", url))
    ...     await response.aread()
    ...     await transport.aclose()
    ...     return response.status_code, response.extensions["http_version"]
    >>> with LoopbackServer() as server:
    ...     asyncio.run(status(server.url("/ok")))
    (200, b'HTTP/1.1')
    """

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        max_connections: int = 100,
        keepalive_expiry: float = _KEEPALIVE_EXPIRY,
    ) -> None:
        # Built here, before any request's clock starts: loading the CA bundle takes a while, and
        # inside the first request it counted against that request's deadline.
        self._tls = _client_tls(verify)
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    @property
    def max_connections(self) -> int:
        """At most this many connections are open at once (afetch sets it to ``-c``)."""
        return self._max_connections

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._tls,
            enable_cleanup_closed=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # afetch keeps no cookies between requests
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        # aiohttp silently resends an idempotent request once when the connection drops, even
        # on a fresh connection: that would double the load on a failing server and make the
        # record's `attempts` untrue. afetch's own --retries policy decides instead. (Private
        # attribute, no public switch as of aiohttp 3.14; harmless if it disappears.)
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout") or {}
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=connect, sock_read=read, connect=pool
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        content = await request.aread()
        url = request.url
        if url.userinfo:
            # Credentials travel in the Authorization header (the fetcher builds it per origin);
            # aiohttp would refuse a request that carries both.
            url = url.copy_with(userinfo=b"")
        try:
            response = await session.request(
                request.method,
                yarl.URL(str(url), encoded=True),  # httpx already encoded it
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                timeout=self._timeout(request),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except Exception as exc:
            _reraise(exc, request)
        version = response.version
        extensions = {
            "http_version": b"HTTP/%d.%d" % (version.major, version.minor)
            if version is not None
            else b"HTTP/1.1",
            "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
        }
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _client_tls(verify: bool | ssl.SSLContext) -> ssl.SSLContext | bool:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        return httpx.create_ssl_context(verify=True)
    return False  # aiohttp's way of saying "do not verify"


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            _reraise(exc, self._request, reading=True)

    async def aclose(self) -> None:
        # A fully read body returns the connection to the pool; a partial one closes it.
        self._response.release()


def _reraise(exc: Exception, request: httpx.Request, *, reading: bool = False) -> NoReturn:
    mapped = _as_httpx(exc, request, reading=reading)
    if mapped is exc:
        raise exc
    if mapped.__cause__ is not None:
        raise mapped from mapped.__cause__
    raise mapped from exc


def _as_httpx(exc: Exception, request: httpx.Request, *, reading: bool = False) -> Exception:
    """The httpx exception that stands for an aiohttp (or OS) exception.

    Checked most specific first: aiohttp's timeout classes are also ``OSError``s and its
    connector errors also ``ClientOSError``s.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.HTTPError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientOSError):
        return (httpx.ReadError if reading else httpx.WriteError)(message, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError) and "ConnectionResetError" in message:
        # aiohttp keeps a reset mid-body only in the message; say "reset" as httpcore did.
        reset = ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
        mapped = httpx.ReadError(message, request=request)
        mapped.__cause__ = reset
        return mapped
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.TransportError(message, request=request)
    return exc
