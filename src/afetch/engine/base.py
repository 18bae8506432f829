"""The engine seam: what speaks HTTP, behind one small interface.

Nothing above this module knows which library sends the bytes. The fetcher hands an engine a
lean :class:`Request` with callbacks (:meth:`Engine.start_transfer`): it is told the final head
(:data:`OnHead`: stop there, count the body, or hand it to a :data:`BodySink` that may hold the
transfer until it is ready for more) and the end (:data:`OnDone`). No coroutine, task or future
per request on libcurl; the httpx adapter runs each transfer as a task behind the same contract.

Two engines exist:

* :class:`afetch.engine.curl.CurlEngine`, the default: libcurl through pycurl, driven by the asyncio
  event loop through libcurl's multi "socket" interface (the pattern of Tornado's
  ``curl_httpclient``). It costs a fraction of the CPU per request of any Python HTTP stack
  (``bench/results/bakeoff.md``).
* :class:`afetch.engine.httpx_adapter.HttpxEngine`, an adapter over any
  ``httpx.AsyncBaseTransport``: what ``afetch.fetch(..., transport=...)`` uses
  (``httpx.MockTransport``, respx, httpx's own transport), and the fallback where pycurl
  cannot be imported.

This module imports neither: the engines import it, and :func:`afetch.engine.factory.open_engine`,
above them, picks one (``pyproject.toml``'s import contracts keep it so).

Both decode gzip and deflate with :class:`afetch.engine.decode.Decoder` in bounded pieces, enforce
``max_size`` on the body, raise errors that :func:`afetch._errors.classify` maps to the documented
error types, never follow redirects and never retry on their own: the fetcher and the scheduler
decide that.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any, NamedTuple, Protocol


class Request(NamedTuple):
    """One HTTP request as the engine sends it. A tuple: cheap to build on the hot path.

    >>> Request("GET", "http://127.0.0.1/", (("Accept", "*/*"),)).method
    'GET'
    """

    method: str
    #: An absolute http(s) URL, already checked by the fetcher, without ``user:password@``.
    url: str
    #: Header (name, value) pairs in the order sent; the same tuple object for every request of
    #: a run unless a request needs its own (credentials, cache validators).
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None
    #: Connect to this address instead of resolving the URL's host (``--no-private`` checked
    #: it); the Host header and the TLS server name keep the name.
    pin: str | None = None
    #: The loop time by which the whole transfer must be over: the engine ends it then (the
    #: fetcher sets no timer of its own).
    deadline: float | None = None


class Headers(list[tuple[str, str]]):
    """Response headers: (lower-case name, value) pairs in the order received.

    >>> Headers([("content-type", "text/html"), ("etag", '"1"')]).get("etag")
    '"1"'
    """

    __slots__ = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (lower case), or ``default``."""
        for key, value in self:
            if key == name:
                return value
        return default


class TransferInfo(NamedTuple):
    """What an engine tells about the transfer of a final response (see :class:`Collect`);
    ``None`` where it cannot tell (the httpx adapter tells nothing)."""

    #: Milliseconds since the request began, cumulative: dns, connect, tls, first_byte, total.
    timings: dict[str, float | None] | None = None
    #: ``{"ip": ..., "port": ...}`` of the server connected to.
    remote: dict[str, Any] | None = None
    #: The TLS connection: version, cipher and the server certificate (``afetch.engine.tls``).
    tls: dict[str, Any] | None = None


class Collect(NamedTuple):
    """What an engine gathers about each transfer besides the response, to report through
    :meth:`Response.transfer_info` (and a failure's ``transfer_info``). Whoever opens the engine
    says; by default nothing, which costs nothing."""

    #: Timings and the address connected to, also of a transfer that failed.
    transfer: bool = False
    #: The TLS version, cipher and certificate of each new connection (implies ``transfer``).
    #: libcurl then reuses no TLS session, so that every new connection shows its certificate.
    tls: bool = False


class Response(Protocol):
    """A response whose head has arrived, as a transfer's callbacks are told it."""

    status: int
    #: "HTTP/1.1", "HTTP/2" or "HTTP/3".
    http_version: str
    headers: Headers
    content_type: str | None
    #: Decoded body bytes delivered so far (also after a failure mid-body).
    bytes_read: int
    #: Timings, address and TLS of the transfer (``--include``), read before the engine let go
    #: of it: set by the time ``on_done`` is told, None when not asked for.
    info: TransferInfo | None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case): for a header or two, cheaper than
        ``headers`` (which parses them all) with some engines."""
        ...


#: Given each piece of a transfer's decoded body as it arrives, from inside the engine: it must
#: not call the engine. A true return holds the transfer (no more pieces) until
#: :meth:`Transfer.resume`; if it raises, the transfer fails with that exception.
BodySink = Callable[[bytes], object]
#: Told a transfer's final head, when its status is one the transfer was asked about: True to
#: count its body, False to stop right there, or a :data:`BodySink` to count it and hand each
#: piece to that sink as well. Called from inside the engine: it must not raise, nor call the
#: engine.
OnHead = Callable[["Response"], "bool | BodySink"]
#: Told once a transfer is over: its final response (None if no head arrived) and the failure
#: (None on success). The engine has let go of the transfer. Never called from inside
#: :meth:`Engine.start_transfer`, nor after :meth:`Transfer.cancel`.
OnDone = Callable[["Response | None", "BaseException | None"], None]


class Transfer(Protocol):
    """A transfer under way (:meth:`Engine.start_transfer`)."""

    def resume(self) -> None:
        """The body sink that held the transfer is ready for more."""
        ...

    def cancel(self) -> None:
        """Abandon the transfer: its connection is closed, ``on_done`` is not told."""
        ...


class Engine(Protocol):
    """What speaks HTTP: one transfer at a time, on callbacks (the shape of Tornado's
    ``curl_httpclient``); the fetcher's attempt machine runs over it."""

    #: Told the origin (``scheme://authority``) of each URL the run reads ahead, to look its
    #: host up before its first transfer (afetch.engine.names); None: the engine does not.
    resolve_ahead: Callable[[str], None] | None

    def start_transfer(
        self,
        request: Request,
        *,
        on_done: OnDone,
        on_head: OnHead | None = None,
        ask_for: Container[int] = (),
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Transfer:
        """Start ``request`` (with ``extra`` headers after its own: the run's tuple stays one,
        formatted once); ``on_done`` is called on the event loop when it is over, and before
        that ``on_head`` about a final head whose status is in ``ask_for``. The engine ends the
        transfer at ``request.deadline`` (error type timeout)."""
        ...

    async def aclose(self) -> None: ...
