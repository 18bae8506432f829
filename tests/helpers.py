"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

import afetch
from afetch import Record
from afetch.engine.base import Engine, Request, Response


def collect(
    urls: Iterable[str], *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> list[Record]:
    """Run ``afetch.fetch`` to completion and return its records."""

    async def run() -> list[Record]:
        return [r async for r in afetch.fetch(urls, transport=transport, **options)]

    return asyncio.run(run())


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` (an http.server one, say) answering from a thread until the block ends, then
    closed. Its loop looks for shutdown() every 20 ms, not socketserver's 0.5 s: a fixture's
    teardown was waiting up to half a second for nothing."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def fetch_through(
    urls: list[str], transport: httpx.AsyncBaseTransport | None, **options: Any
) -> list[Record]:
    """``afetch.fetch`` over ``urls`` (``options``: ``settings=`` or its fields) through
    ``transport``, closed after; None: the curl engine."""

    async def run() -> list[Record]:
        try:
            return [r async for r in afetch.fetch(urls, transport=transport, **options)]
        finally:
            if transport is not None:
                await transport.aclose()

    return asyncio.run(run())


def fetch_on(urls: list[str], engine: str = "curl", **options: Any) -> list[Record]:
    """``afetch.fetch`` over ``urls`` with ``Settings(**options)``, on the curl engine or, for
    ``engine="httpx"``, on the httpx transport (closed after)."""
    from afetch._settings import Settings
    from afetch.engine.httpx_adapter import default_transport

    settings = Settings(**options)
    transport = default_transport(settings) if engine == "httpx" else None
    return fetch_through(urls, transport, settings=settings)


@contextlib.contextmanager
def loopback_servers(count: int) -> Iterator[list[Any]]:
    """``count`` LoopbackServers (each a host of its own: its own port), started; stopped after."""
    from afetch._loopback import LoopbackServer

    started = [LoopbackServer() for _ in range(count)]
    for one in started:
        one.start()
    try:
        yield started
    finally:
        for one in started:
            one.stop()


def by_url(records: Iterable[Record]) -> dict[str, Record]:
    return {record.url: record for record in records}


def wait_until(condition: Callable[[], bool], *, timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` until it holds: the sign a test waits for, instead of a fixed sleep
    that is too long on an idle machine and too short on a loaded one."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what or condition}"
        time.sleep(0.01)


async def transfer(
    engine: Engine, request: Request, *, hold_every: int | None = None
) -> tuple[Response, bytes]:
    """One transfer on ``engine``'s callbacks (``start_transfer``): the final response and its
    body, or its failure raised. With ``hold_every``, the body sink holds the transfer after
    each such many bytes and resumes it on a later loop turn, as a slow reader would."""
    loop = asyncio.get_running_loop()
    over: asyncio.Future[Response] = loop.create_future()
    pieces: list[bytes] = []
    since_held = 0

    def sink(piece: bytes) -> bool:
        nonlocal since_held
        pieces.append(piece)
        since_held += len(piece)
        if hold_every is None or since_held < hold_every:
            return False
        since_held = 0
        loop.call_soon(handle.resume)
        return True

    def on_done(response: Response | None, failure: BaseException | None) -> None:
        if failure is not None:
            over.set_exception(failure)
        else:
            assert response is not None
            over.set_result(response)

    handle = engine.start_transfer(
        request, on_done=on_done, on_head=lambda response: sink, ask_for=range(1000)
    )
    try:
        response = await over
    except asyncio.CancelledError:
        if not over.done():
            handle.cancel()  # abandoned: the engine lets go of it
        raise
    return response, b"".join(pieces)
