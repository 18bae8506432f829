"""One of the lab's HTTPS server processes: every live name of the plan, on 0.0.0.0:443 inside the
lab's namespace (where only loopback exists), SO_REUSEPORT so that one process per core shares
the port. The same names answer plain HTTP on port 80 (bench/dns_scale.py: a lookup per URL
without a TLS handshake to hide its cost).

Usage: python bench/lab_server.py PLAN_JSON CERT_PEM KEY_PEM STATS_SOCKET READY_FILE

HTTP/1.1 with keep-alive (ALPN offers http/1.1 only). Each request is answered after its host's
latency (from the Host header; the plan drew it once per host) with a 1 KB body; a drip host then
sends the body in 16 pieces over the plan's drip_s. Unknown hosts get 404 at once. A connection
to the Unix socket STATS_SOCKET gets a JSON line of counters (connections, requests, whole
responses), so the bench can tell how many URLs each client really fetched. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys
from pathlib import Path

from lab_plan import BODY_BYTES, DRIP_PIECES, read

BODY = b"x" * (BODY_BYTES - 1) + b"\n"
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
MAX_HEAD = 16384


class Counters:
    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.responses = 0  # sent whole: the client has every byte

    def as_json(self) -> bytes:
        return json.dumps(self.__dict__).encode() + b"\n"


class Http(asyncio.Protocol):
    def __init__(
        self, hosts: dict[str, tuple[str, float]], drip_s: float, counters: Counters
    ) -> None:
        self.hosts = hosts
        self.drip_s = drip_s
        self.counters = counters
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.busy = False
        self.close_after = False
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_HEAD and b"\r\n\r\n" not in self.buffer:
            self._close()
            return
        self._next()

    def _next(self) -> None:
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        self.busy = True
        self.counters.requests += 1
        lines = head.split("\r\n")
        host = ""
        self.close_after = lines[0].endswith("HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "host":
                host = value.strip().lower().rsplit(":", 1)[0] if "]" not in value else ""
            elif name == "connection" and "close" in value.lower():
                self.close_after = True
        entry = self.hosts.get(host)
        if entry is None:
            self._finish(NOT_FOUND)
            return
        kind, latency = entry
        if kind == "drip":
            self.timer = self.loop.call_later(latency, self._drip, 0)
        else:
            self.timer = self.loop.call_later(latency, self._finish, HEAD + BODY)

    def _drip(self, piece: int) -> None:
        if self.transport is None:
            return
        size = len(BODY) // DRIP_PIECES
        if piece == 0:
            self.transport.write(HEAD)
        if piece == DRIP_PIECES - 1:
            self._finish(BODY[piece * size :])
            return
        self.transport.write(BODY[piece * size : (piece + 1) * size])
        self.timer = self.loop.call_later(self.drip_s / DRIP_PIECES, self._drip, piece + 1)

    def _finish(self, data: bytes) -> None:
        self.timer = None
        if self.transport is None:
            return
        self.transport.write(data)
        if data is not NOT_FOUND:
            self.counters.responses += 1
        self.busy = False
        if self.close_after:
            self._close()
        else:
            self._next()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def main(plan: str, cert: str, key: str, stats: str, ready: str) -> None:
    settings, hosts = read(Path(plan))
    table = {h.name: (h.kind, h.latency_s) for h in hosts if h.kind != "dead"}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    counters = Counters()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    servers = [
        await loop.create_server(
            lambda: Http(table, settings.drip_s, counters),
            host="0.0.0.0",  # inside the lab's namespace: loopback only
            port=port,
            ssl=tls,
            reuse_port=True,
            backlog=4096,
        )
        for port, tls in ((443, context), (80, None))
    ]

    async def report(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(counters.as_json())
        await writer.drain()
        writer.close()

    control = await asyncio.start_unix_server(report, path=stats)
    Path(ready).write_text("ready\n")
    try:
        await stop
    finally:
        for server in servers:
            server.close()
        control.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # the bench extra brings it; the plain loop serves too, more slowly
        asyncio.run(main(*sys.argv[1:6]))
    else:
        uvloop.run(main(*sys.argv[1:6]))
