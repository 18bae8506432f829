"""The httpx adapter: any ``httpx.AsyncBaseTransport`` as an afetch engine.

This is what keeps httpx afetch's public seam: ``afetch.fetch(urls, transport=...)`` accepts
``httpx.MockTransport``, a respx router, httpx's own transport or a third-party one, and this
adapter turns them into :class:`afetch.engine.base.Engine`. Bodies are decoded here in bounded
pieces (:mod:`afetch.engine.decode`), never by the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Container

import httpx

from afetch._clock import Clock
from afetch._errors import AfetchError, BadResponse, ErrorType, TooLarge, classify
from afetch._settings import Settings
from afetch.engine.base import BodySink, Headers, OnDone, OnHead, Request, TransferInfo
from afetch.engine.connections import pool_size, settings_per_request
from afetch.engine.decode import ACCEPT_ENCODING, PIECE, PIECES_PER_TURN, Decoder
from afetch.engine.tls import tls_verify

_PROXY_ONLY = frozenset({"proxy-authorization"})


def default_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """httpx's own transport, for where pycurl is not installed.

    At most ``settings.concurrency`` requests are in flight (the scheduler's bound), with idle
    connections kept beside them as on libcurl (:mod:`afetch.engine.connections`); TLS
    certificates are verified unless ``settings.verify`` is false.
    """
    pool = pool_size(settings.concurrency, per_request=settings_per_request(settings))
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    return httpx.AsyncHTTPTransport(
        verify=tls_verify(settings), http2=settings.http2, limits=limits, retries=0
    )


class HttpxEngine:
    """Sends requests through ``transport``; closes it at the end only when ``owned``.

    >>> import asyncio
    >>> mock = httpx.MockTransport(lambda request: httpx.Response(200, text="hello"))
    >>> async def size():
    ...     engine = HttpxEngine(mock, Settings())
    ...     over = asyncio.get_running_loop().create_future()
    ...     def on_done(response, failure):
    ...         over.set_result((response.status, response.bytes_read))
    ...     engine.start_transfer(Request("GET", "http://127.0.0.1/", ()), on_done=on_done)
    ...     return await over
    >>> asyncio.run(size())
    (200, 5)
    """

    #: The transport resolves names itself (its own pool, a mock, a proxy).
    resolve_ahead = None

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: Settings,
        *,
        owned: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._transport = transport
        #: What request deadlines are times on (None: the running loop's).
        self._clock = clock
        self._owned = owned
        #: Transfers under way (the loop keeps only weak references to tasks).
        self._transfers: set[_HttpxTransfer] = set()
        self._max_size = settings.max_size
        self._timeout = settings.timeout
        connect = settings.connect_timeout or settings.timeout
        self._timeouts = {
            "connect": connect,
            "read": settings.timeout,
            "write": settings.timeout,
            "pool": settings.timeout,
        }

    def start_transfer(
        self,
        request: Request,
        *,
        on_done: OnDone,
        on_head: OnHead | None = None,
        ask_for: Container[int] = (),
        extra: tuple[tuple[str, str], ...] = (),
    ) -> _HttpxTransfer:
        """The contract of :meth:`afetch.engine.base.Engine.start_transfer`, with a task per
        transfer (httpx's transports are coroutines)."""
        if extra:
            request = request._replace(headers=(*request.headers, *extra))
        transfer = _HttpxTransfer(self, request, on_done, on_head, ask_for)
        self._transfers.add(transfer)
        return transfer

    async def _open(self, request: Request) -> _HttpxResponse:
        """Send ``request``; the response once its head has arrived."""
        # Proxies are the transport's business (this adapter ignores --proxy and the
        # environment); Proxy-Authorization is a proxy's credential and never goes to a server.
        headers = httpx.Headers(
            [(name, value) for name, value in request.headers if name.lower() not in _PROXY_ONLY]
        )
        # What afetch.engine.decode decodes, as libcurl asks for it (a -H Accept-Encoding wins).
        headers.setdefault("Accept-Encoding", ACCEPT_ENCODING)
        extensions: dict[str, object] = {"timeout": self._timeouts}
        url = httpx.URL(request.url)
        if request.pin is not None:
            # Connect to the checked address; Host (set from the URL above) keeps the name.
            headers.setdefault("Host", url.netloc.decode("ascii"))
            if url.scheme == "https":
                extensions["sni_hostname"] = url.host
                # A pinned connection must not serve another name on the same address.
                headers["Connection"] = "close"
            url = url.copy_with(host=request.pin)
        outgoing = httpx.Request(
            request.method, url, headers=headers, content=request.body, extensions=extensions
        )
        response = await self._transport.handle_async_request(outgoing)
        response.request = outgoing
        return _HttpxResponse(response, self._max_size)

    async def aclose(self) -> None:
        for transfer in list(self._transfers):
            transfer.cancel()
        if self._owned:
            await self._transport.aclose()


class _HttpxTransfer:
    """One transfer of :meth:`HttpxEngine.start_transfer`: a task that sends, asks about the
    head, feeds the body to the sink (waiting while the sink holds it) and tells the end."""

    __slots__ = ("_ask_for", "_engine", "_expired", "_on_done", "_on_head", "_resumed", "_task")

    def __init__(
        self,
        engine: HttpxEngine,
        request: Request,
        on_done: OnDone,
        on_head: OnHead | None,
        ask_for: Container[int],
    ) -> None:
        self._engine = engine
        self._on_done = on_done
        self._on_head = on_head
        self._ask_for = ask_for
        self._resumed: asyncio.Future[None] | None = None
        self._expired = False
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(request))
        if request.deadline is not None:
            # The request's deadline is the engine's to keep, on the run's clock.
            timer = (engine._clock or loop).call_at(request.deadline, self._expire)
            self._task.add_done_callback(lambda _: timer.cancel())

    async def _run(self, request: Request) -> None:
        response: _HttpxResponse | None = None
        failure: BaseException | None = None
        try:
            response = await self._engine._open(request)
            try:
                await self._read(response)
            finally:
                await response.aclose()
        except asyncio.CancelledError:
            if not self._expired:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            failure = TimeoutError(f"no complete response within {self._engine._timeout}s")
        except Exception as exc:
            failure = exc
        self._engine._transfers.discard(self)
        self._on_done(response, failure)

    async def _read(self, response: _HttpxResponse) -> None:
        wanted: bool | BodySink = True
        if self._on_head is not None and response.status in self._ask_for:
            wanted = self._on_head(response)
        if wanted is False:
            return
        if wanted is True:
            await response.drain()
            return
        async for piece in response.pieces():
            if wanted(piece):
                self._resumed = asyncio.get_running_loop().create_future()
                await self._resumed

    def _expire(self) -> None:
        if not self._task.done():
            self._expired = True
            self._task.cancel()

    def resume(self) -> None:
        resumed = self._resumed
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    def cancel(self) -> None:
        self._engine._transfers.discard(self)
        self._task.cancel()


class _HttpxResponse:
    __slots__ = (
        "_max_size",
        "_response",
        "bytes_read",
        "content_type",
        "headers",
        "http_version",
        "info",
        "status",
    )

    def __init__(self, response: httpx.Response, max_size: int | None) -> None:
        self._response = response
        self._max_size = max_size
        self.bytes_read = 0
        # httpx's transports do not say how long DNS, connect or TLS took, nor (for the
        # transports afetch takes, mocks included) where they connected.
        self.info = TransferInfo()
        self.status = response.status_code
        self.http_version = response.extensions.get("http_version", b"HTTP/1.1").decode(
            "ascii", "replace"
        )
        self.headers = Headers(
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in response.headers.raw
        )
        self.content_type = self.headers.get("content-type")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    async def drain(self) -> int:
        async for _ in self.pieces():
            pass
        return self.bytes_read

    async def pieces(self) -> AsyncIterator[bytes]:
        try:
            async for piece in body_pieces(self._response, max_size=self._max_size):
                self.bytes_read += len(piece)
                yield piece
        except AfetchError:
            raise
        except Exception as exc:
            # A reset mid-body is a truncated body, as libcurl reports it too.
            if classify(exc).type == ErrorType.RESET:
                raise BadResponse(
                    f"body cut short after {self.bytes_read} bytes: connection reset"
                ) from exc
            raise

    def transfer_info(self) -> TransferInfo:
        return self.info

    async def aclose(self) -> None:
        await self._response.aclose()


async def body_pieces(
    response: httpx.Response, *, max_size: int | None = None
) -> AsyncIterator[bytes]:
    """Yield the decoded body in pieces of at most ``PIECE`` bytes.

    Raises :class:`TooLarge` as soon as the body (on the wire, or decoded) passes ``max_size``,
    before reading anything when the declared Content-Length already does.

    >>> import asyncio, gzip, httpx
    >>> stream = httpx.ByteStream(gzip.compress(b"a" * 200_000))
    >>> r = httpx.Response(200, stream=stream, headers={"Content-Encoding": "gzip"})
    >>> async def sizes():
    ...     return [len(piece) async for piece in body_pieces(r)]
    >>> asyncio.run(sizes())
    [65536, 65536, 65536, 3392]
    """
    declared = response.headers.get("content-length", "")
    if max_size is not None and declared.isdigit() and int(declared) > max_size:
        raise TooLarge(f"Content-Length {declared} is over --max-size {max_size}")
    if response.is_stream_consumed:
        # Read in full already (a mock transport's response built from bytes), and decoded.
        content = response.content
        if max_size is not None and len(content) > max_size:
            raise TooLarge(f"decoded body is over --max-size {max_size} bytes")
        for start in range(0, len(content), PIECE):
            yield content[start : start + PIECE]
        return
    decoder = Decoder.of(response.headers.get("content-encoding"))
    received = decoded = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if max_size is not None and received > max_size:
            raise TooLarge(f"body is over --max-size {max_size} bytes")
        pieces = (chunk,) if decoder is None else decoder.feed(chunk)
        for count, piece in enumerate(pieces, 1):
            decoded += len(piece)
            if max_size is not None and decoded > max_size:
                raise TooLarge(f"decoded body is over --max-size {max_size} bytes")
            yield piece
            if count % PIECES_PER_TURN == 0:
                # One network chunk can inflate to ~1000 pieces: let other fetches (and the
                # deadline) run in between.
                await asyncio.sleep(0)
    if decoder is not None:
        decoder.finish()
