"""A small HTTP/1.1 server on 127.0.0.1 that misbehaves on request.

It powers ``afetch --demo`` and the test suite: real sockets, so timeouts, resets and the
concurrency bound are exercised for real. Routes (query parameters in brackets):

``/ok[?size=N]``           200 with N bytes (default 1024)
``/status/CODE``           that status
``/sleep/MS``              answers after MS milliseconds
``/busy/N[/ANY][?ms=M]``   a host that takes N requests at once: 200 after M ms (default 20),
                           503 at once to a request arriving while N are in flight
``/redirect/N``            N redirects, then /ok
``/redirect-to?url=U``     302 to U
``/loop``                  redirects to itself forever
``/flaky/KEY/N[?status]``  fails N times (503 or the given status), then 200
``/retry-after/KEY/N?after=S``  429 with Retry-After S, N times, then 200
``/quota/KEY/Q[/ANY]?w=S&style=draft|legacy|github``  Q requests per window of S seconds
                           (default 1) for KEY, fixed windows from its first request, saying
                           so in rate-limit fields (the IETF draft's RateLimit and
                           RateLimit-Policy; RateLimit-Limit/-Remaining/-Reset; or GitHub's
                           X-RateLimit-* with a Unix-time reset); 429 past the quota
``/no-head``               405 to a HEAD, 200 to anything else (a server that mishandles HEAD)
``/hang``                  accepts and never answers
``/drip?n=N&interval=S``   sends an N-byte body one byte every S seconds
``/reset``                 resets the connection before answering
``/reset-body``            resets the connection halfway through the body
``/truncate``              promises 1000 bytes, sends 10 and closes
``/garbage``               answers with bytes that are not HTTP
``/huge-header``           a 200 KB response header
``/gzip-bomb?mb=M``        a small gzip body that inflates to M MiB
``/headers``               echoes the request headers as JSON
``/page[?title=T&charset=C]``  an HTML page titled T, encoded in C (Content-Type says so),
                           with two ``X-Multi`` headers
``/echo``                  echoes the request as JSON: method, path, headers (lower-case names),
                           body (its bytes as latin-1 text: one character per byte)
``/etag/KEY[?v=V]``        ETag "KEY-V" (V defaults to 1); 304 when If-None-Match matches
``/last-modified/KEY[?t=EPOCH]``  Last-Modified at EPOCH; 304 when If-Modified-Since >= it
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import socket
import ssl as ssl_module
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class ServerStats:
    """What the server saw; read by tests (e.g. the concurrency bound)."""

    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    #: Connections accepted (to see how many a client reuses).
    connections: int = 0
    #: 503s answered by ``/busy`` (requests past its threshold).
    busy_refused: int = 0
    #: 429s answered by ``/quota`` (requests past a window's quota).
    quota_refused: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    #: (method, path) → requests seen, to tell a retried POST from a retried GET.
    by_method: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.max_in_flight = self.in_flight
            self.requests = 0
            self.busy_refused = 0
            self.quota_refused = 0
            self.by_path.clear()
            self.by_method.clear()


class LoopbackServer:
    """Runs the server in a thread with its own event loop.

    >>> with LoopbackServer() as server:
    ...     server.url("/ok").startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, ssl: ssl_module.SSLContext | None = None
    ) -> None:
        self.host = host
        self._port = port
        #: Serve https with this context (tests make one with ``trustme``).
        self.ssl = ssl
        self.stats = ServerStats()
        self._failures: Counter[str] = Counter()
        #: ``/quota`` keys: (start of the first window, its window, requests in the current one).
        self._quotas: dict[str, tuple[float, int, int]] = {}
        #: ``/busy`` requests being served (only touched on the server's loop).
        self._busy = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str) -> str:
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{self.host}:{self._port}{path}"

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="afetch-loopback", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def _shutdown(self) -> None:
        assert self._server is not None
        assert self._loop is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._loop.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # gather() below needs it when nothing is pending
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, self.host, self._port, backlog=4096, ssl=self.ssl)
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            # gather() needs a running loop on Python 3.11: call it inside a coroutine.
            loop.run_until_complete(_settle(pending))
        finally:
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self.stats.lock:
            self.stats.connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Server shutdown. Ending normally keeps Python 3.11's stream callback from logging
            # every cancelled connection as an error.
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort() if writer.is_closing() else writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        stats = self.stats
        with stats.lock:
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            stats.by_path[parts.path] += 1
            stats.by_method[method, parts.path] += 1
            stats.last_headers = headers
        try:
            # The body is read before routing, so a keep-alive connection stays in step.
            body = await _read_body(reader, headers)
            if parts.path == "/echo":
                echo = {"method": method, "path": target, "headers": headers}
                echo["body"] = body.decode("latin-1")
                send = _Sender(writer, head_only=method == "HEAD")
                await send(200, json.dumps(echo).encode(), content_type="application/json")
                return True
            return await self._route(method, parts.path, query, headers, reader, writer)
        finally:
            with stats.lock:
                stats.in_flight -= 1

    async def _quota(self, send: _Sender, key: str, quota: int, query: dict[str, str]) -> None:
        """``/quota``: fixed windows on the server's clock; 429 past the quota of the current
        one. The fields say what is left and when the window ends (rounded up)."""
        window = float(query.get("w", 1))
        now = time.monotonic()
        start, index, used = self._quotas.get(key, (now, 0, 0))
        current = int((now - start) // window)
        if current != index:
            index, used = current, 0
        used += 1
        self._quotas[key] = (start, index, used)
        reset = math.ceil(start + (index + 1) * window - now)
        fields = _quota_fields(
            query.get("style", "draft"), quota, window, max(0, quota - used), reset
        )
        if used > quota:
            with self.stats.lock:
                self.stats.quota_refused += 1
            await send(429, b"over quota", fields=fields)
        else:
            await send(200, b"within quota", fields=fields)

    async def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        segments = path.strip("/").split("/")
        name = segments[0]
        send = _Sender(writer, head_only=method == "HEAD")
        if name == "ok":
            await send(200, b"x" * int(query.get("size", 1024)))
        elif name == "status":
            code = int(segments[1])
            await send(code, _REASONS.get(code, "Status").encode())
        elif name == "sleep":
            await asyncio.sleep(int(segments[1]) / 1000)
            await send(200, b"slept")
        elif name == "busy":
            if self._busy >= int(segments[1]):
                with self.stats.lock:
                    self.stats.busy_refused += 1
                await send(503, b"too busy")
                return True
            self._busy += 1
            try:
                await asyncio.sleep(float(query.get("ms", 20)) / 1000)
            finally:
                self._busy -= 1
            await send(200, b"served")
        elif name == "redirect":
            left = int(segments[1])
            await send(302, b"", location="/ok" if left <= 1 else f"/redirect/{left - 1}")
        elif name == "redirect-to":
            body = b"r" * int(query.get("size", 0))  # what a redirect says besides Location
            await send(int(query.get("status", 302)), body, location=query["url"])
        elif name == "loop":
            await send(302, b"", location="/loop")
        elif name in ("flaky", "retry-after"):
            key, times = f"{name}/{segments[1]}", int(segments[2])
            if self._failures[key] < times:
                self._failures[key] += 1
                if name == "flaky":
                    await send(int(query.get("status", 503)), b"try again")
                else:
                    await send(429, b"slow down", retry_after=query.get("after", "1"))
            else:
                await send(200, b"finally")
        elif name == "no-head":
            await send(405 if method == "HEAD" else 200, b"use GET")
        elif name == "quota":
            await self._quota(send, segments[1], int(segments[2]), query)
        elif name == "hang":
            # Never answer, but notice when the client gives up so it stops counting as in flight.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3600):
                    while await reader.read(4096):
                        pass
            return False
        elif name == "drip":
            size, interval = int(query.get("n", 10)), float(query.get("interval", 1))
            writer.write(_head(200, size))
            for _ in range(size):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(interval)
        elif name == "reset":
            _reset(writer)
            return False
        elif name == "reset-body":
            writer.write(_head(200, 100_000) + b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            _reset(writer)
            return False
        elif name == "truncate":
            writer.write(_head(200, 1000) + b"x" * 10)
            await writer.drain()
            return False
        elif name == "garbage":
            writer.write(b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n")
            await writer.drain()
            return False
        elif name == "huge-header":
            writer.write(
                b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n"
            )
            await writer.drain()
        elif name == "gzip-bomb":
            body = _gzip_bomb(int(query.get("mb", 64)))
            await send(200, body, content_encoding="gzip")
        elif name == "headers":
            await send(200, json.dumps(headers).encode(), content_type="application/json")
        elif name == "page":
            await _page(query, writer, head_only=method == "HEAD")
        elif name in ("etag", "last-modified"):
            await _conditional(name, segments, query, headers, writer, head_only=method == "HEAD")
        else:
            await send(404, b"no such route")
        return True


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """A request body: Content-Length bytes, or chunked (trailers ignored)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readuntil(b"\r\n")
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass
        return b"".join(parts)
    length = headers.get("content-length", "0")
    return await reader.readexactly(int(length)) if length.isdigit() else b""


async def _conditional(
    name: str,
    segments: list[str],
    query: dict[str, str],
    headers: dict[str, str],
    writer: asyncio.StreamWriter,
    *,
    head_only: bool,
) -> None:
    """/etag/KEY and /last-modified/KEY: a resource that answers conditional requests."""
    key = segments[1] if len(segments) > 1 else "key"
    if name == "etag":
        tag = f'"{key}-{query.get("v", "1")}"'
        validator = f"ETag: {tag}"
        asked = {t.strip() for t in headers.get("if-none-match", "").split(",")}
        fresh = tag in asked or "*" in asked
    else:
        stamp = int(query.get("t", "1700000000"))
        validator = f"Last-Modified: {formatdate(stamp, usegmt=True)}"
        try:
            since = parsedate_to_datetime(headers["if-modified-since"]).timestamp()
        except (KeyError, TypeError, ValueError):
            since = None
        fresh = since is not None and since >= stamp
    if fresh:
        writer.write(_head(304, 0, [validator]))
    else:
        body = f"{name} {key}".encode()
        extra = [validator, "Content-Type: text/plain"]
        writer.write(_head(200, len(body), extra) + (b"" if head_only else body))
    await writer.drain()


async def _page(query: dict[str, str], writer: asyncio.StreamWriter, *, head_only: bool) -> None:
    """/page: an HTML page with a title, in a given charset (for ``--include title,body``)."""
    charset = query.get("charset", "utf-8")
    title = query.get("title", "Loopback page")
    text = (
        f"<!doctype html>\n<html><head>\n<TITLE>\n  {title}\n</TITLE></head>"
        f"<body>{title}</body></html>"
    )
    body = text.encode(charset)
    extra = [f"Content-Type: text/html; charset={charset}", "X-Multi: a", "X-Multi: b"]
    writer.write(_head(200, len(body), extra) + (b"" if head_only else body))
    await writer.drain()


def _quota_fields(style: str, quota: int, window: float, left: int, reset: int) -> list[str]:
    if style == "legacy":
        names = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
        return [f"{n}: {v}" for n, v in zip(names, (quota, left, reset), strict=True)]
    if style == "github":
        epoch = math.ceil(time.time()) + reset
        names = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
        return [f"{n}: {v}" for n, v in zip(names, (quota, left, epoch), strict=True)]
    return [
        f'RateLimit-Policy: "default";q={quota};w={math.ceil(window)}',
        f'RateLimit: "default";r={left};t={reset}',
    ]


class _Sender:
    def __init__(self, writer: asyncio.StreamWriter, *, head_only: bool) -> None:
        self._writer = writer
        self._head_only = head_only

    async def __call__(
        self,
        status: int,
        body: bytes,
        *,
        location: str | None = None,
        retry_after: str | None = None,
        content_encoding: str | None = None,
        content_type: str = "text/plain",
        fields: list[str] | None = None,
    ) -> None:
        extra = list(fields or ())
        if location is not None:
            extra.append(f"Location: {location}")
        if retry_after is not None:
            extra.append(f"Retry-After: {retry_after}")
        if content_encoding is not None:
            extra.append(f"Content-Encoding: {content_encoding}")
        extra.append(f"Content-Type: {content_type}")
        self._writer.write(_head(status, len(body), extra) + (b"" if self._head_only else body))
        await self._writer.drain()


def _head(status: int, length: int, extra: list[str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {length}"]
    lines.extend(extra or ())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _settle(tasks: set[asyncio.Task[object]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


@functools.lru_cache(maxsize=4)
def _gzip_bomb(mib: int) -> bytes:
    """gzip of ``mib`` MiB of zeros, compressed a MiB at a time: the server never holds it all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(mib)]
    parts.append(compressor.flush())
    return b"".join(parts)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
