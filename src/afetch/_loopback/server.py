"""A small HTTP/1.1 server on 127.0.0.1 that misbehaves on request (its routes:
afetch._loopback.routes), in a thread with its own event loop.

It powers ``afetch --demo`` and the test suite: real sockets, so timeouts, resets and the
concurrency bound are exercised for real.
"""

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
import threading
from urllib.parse import parse_qs, urlsplit

from afetch._loopback.routes import Routes
from afetch._loopback.stats import ServerStats
from afetch._loopback.wire import Sender, read_body


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
        self._routes = Routes(self.stats)
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
            body = await read_body(reader, headers)
            if parts.path == "/echo":
                echo = {"method": method, "path": target, "headers": headers}
                echo["body"] = body.decode("latin-1")
                send = Sender(writer, head_only=method == "HEAD")
                await send(200, json.dumps(echo).encode(), content_type="application/json")
                return True
            return await self._routes(method, parts.path, query, headers, reader, writer)
        finally:
            with stats.lock:
                stats.in_flight -= 1


async def _settle(tasks: set[asyncio.Task[object]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
