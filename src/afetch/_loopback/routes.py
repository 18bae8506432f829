"""The loopback server's routes. Routes (query parameters in brackets):

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
import time
import zlib
from collections import Counter
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING

from afetch._loopback.wire import REASONS, Sender, head, reset_connection

if TYPE_CHECKING:
    from afetch._loopback.stats import ServerStats


class Routes:
    """Answers a request by its path; remembers what some routes count between requests (only
    touched on the server's loop)."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self._failures: Counter[str] = Counter()
        #: ``/quota`` keys: (start of the first window, its window, requests in the current one).
        self._quotas: dict[str, tuple[float, int, int]] = {}
        #: ``/busy`` requests being served.
        self._busy = 0

    async def __call__(
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
        send = Sender(writer, head_only=method == "HEAD")
        if name == "ok":
            await send(200, b"x" * int(query.get("size", 1024)))
        elif name == "status":
            code = int(segments[1])
            await send(code, REASONS.get(code, "Status").encode())
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
            await self.quota(send, segments[1], int(segments[2]), query)
        elif name == "hang":
            # Never answer, but notice when the client gives up so it stops counting as in flight.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3600):
                    while await reader.read(4096):
                        pass
            return False
        elif name == "drip":
            size, interval = int(query.get("n", 10)), float(query.get("interval", 1))
            writer.write(head(200, size))
            for _ in range(size):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(interval)
        elif name == "reset":
            reset_connection(writer)
            return False
        elif name == "reset-body":
            writer.write(head(200, 100_000) + b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            reset_connection(writer)
            return False
        elif name == "truncate":
            writer.write(head(200, 1000) + b"x" * 10)
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
            body = gzip_bomb(int(query.get("mb", 64)))
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

    async def quota(self, send: Sender, key: str, quota: int, query: dict[str, str]) -> None:
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
        writer.write(head(304, 0, [validator]))
    else:
        body = f"{name} {key}".encode()
        extra = [validator, "Content-Type: text/plain"]
        writer.write(head(200, len(body), extra) + (b"" if head_only else body))
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
    writer.write(head(200, len(body), extra) + (b"" if head_only else body))
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


@functools.lru_cache(maxsize=4)
def gzip_bomb(mib: int) -> bytes:
    """gzip of ``mib`` MiB of zeros, compressed a MiB at a time: the server never holds it all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(mib)]
    parts.append(compressor.flush())
    return b"".join(parts)
