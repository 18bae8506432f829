"""The loopback server's HTTP on the wire: a response's head and body, a request's body, a reset."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
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


class Sender:
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
        self._writer.write(head(status, len(body), extra) + (b"" if self._head_only else body))
        await self._writer.drain()


def head(status: int, length: int, extra: list[str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Length: {length}"]
    lines.extend(extra or ())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reset_connection(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
