"""The scheduler: bounded concurrency over a lazy stream of URLs; records in completion order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import httpx

from afetch._fetcher import Fetcher
from afetch._ordering import WINDOW_FACTOR, ReorderWindow
from afetch._record import Record
from afetch._settings import Settings
from afetch._transport import default_transport

_DONE = object()


async def _as_async(urls: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(urls, AsyncIterable):
        async for url in urls:
            yield url
    else:
        for url in urls:
            yield url


async def fetch(
    urls: Iterable[str] | AsyncIterable[str],
    *,
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> AsyncIterator[Record]:
    """Fetch ``urls`` concurrently and yield one :class:`Record` per URL, as each completes.

    ``urls`` may be any iterable or async iterable of strings; it is consumed lazily, and at most
    ``concurrency`` fetches (and as many finished records) exist at any moment. Options are the
    fields of :class:`Settings`, given either as ``settings=`` or as keywords. Setting ``stop``
    ends the run early: nothing new starts, fetches in flight are cancelled, and the records
    already completed are still yielded. A transport passed in is not closed.

    >>> import asyncio, httpx, afetch
    >>> mock = httpx.MockTransport(lambda request: httpx.Response(200, text="hi"))
    >>> async def main():
    ...     return [r.bytes async for r in afetch.fetch(["http://127.0.0.1/"], transport=mock)]
    >>> asyncio.run(main())
    [2]
    """
    if settings is None:
        settings = Settings(**options)
    elif options:
        raise TypeError("pass either settings= or keyword options, not both")
    own_transport = transport is None
    active_transport = default_transport(settings) if transport is None else transport
    fetcher = Fetcher(active_transport, settings)
    # A slot is held from before a fetch starts until its record is taken by the consumer, so
    # tasks plus finished-but-unread records never exceed `concurrency`.
    slots = asyncio.Semaphore(settings.concurrency)
    results: asyncio.Queue[Any] = asyncio.Queue()
    # With `ordered`, the window (not the slots) bounds the finished records waiting their turn.
    window = None
    if settings.ordered:
        window = ReorderWindow[Record](settings.concurrency * WINDOW_FACTOR)

    async def run_one(url: str, index: int) -> None:
        record = await fetcher.fetch(url)
        if window is None:
            results.put_nowait(record)
            return
        slots.release()
        for due in window.complete(index, record):
            results.put_nowait(due)

    async def produce() -> None:
        async with asyncio.TaskGroup() as group:
            index = 0
            async for url in _as_async(urls):
                if window is not None:
                    await window.admit()
                await slots.acquire()
                group.create_task(run_one(url, index))
                index += 1

    producer = asyncio.create_task(produce(), name="afetch-scheduler")
    # A done-callback rather than `finally`: it runs even if the task is cancelled before it starts.
    producer.add_done_callback(lambda _: results.put_nowait(_DONE))
    stopper = None
    if stop is not None:
        stopper = asyncio.create_task(stop.wait())
        stopper.add_done_callback(lambda _: producer.cancel())
    try:
        while (item := await results.get()) is not _DONE:
            if window is None:
                slots.release()
            else:
                window.taken()
            yield item
        if window is not None:
            for record in window.drain():  # after a stop: finished ones behind an unfinished one
                yield record
        if not (stop is not None and stop.is_set()):
            await producer  # re-raise what ended the producer (an unreadable input, say)
    finally:
        for task in (producer, stopper):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if own_transport:
            await active_transport.aclose()
