"""A fake clock for the scheduler: time stands still until the test moves it.

Like trio's ``MockClock`` with autojump: :func:`collect_on` lets the event loop run until
nothing is left to do but wait, then jumps the clock to the next timer and fires it. Pacing and
retry waits are then checked exactly, against the clock, instead of wall-clock margins. Use it
with an in-process transport (``httpx.MockTransport``): real I/O would race the jumps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import httpx

import afetch
from afetch import Record

#: Loop iterations that let every runnable task finish its step before the clock jumps; a fetch
#: over a MockTransport needs a handful.
_SETTLE = 100


class FakeTimer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Implements afetch._clock.Clock; only :meth:`jump` moves time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.start = start
        self.now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> FakeTimer:
        timer = FakeTimer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> FakeTimer:
        return self.call_at(self.now + delay, callback, *args)

    def jump(self) -> bool:
        """Move to the earliest pending timer and fire it; False if none is pending."""
        while self._timers:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            timer.callback(*timer.args)
            return True
        return False

    def elapsed(self) -> float:
        return self.now - self.start


def collect_on(
    clock: FakeClock,
    urls: Iterable[str],
    *,
    transport: httpx.AsyncBaseTransport,
    **options: Any,
) -> list[Record]:
    """Run ``afetch.fetch`` on ``clock`` to completion; records in the order they came."""

    async def run() -> list[Record]:
        records: list[Record] = []

        async def consume() -> None:
            async for record in afetch.fetch(urls, transport=transport, clock=clock, **options):
                records.append(record)

        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 20
        while not task.done():
            assert time.monotonic() < deadline, "the run is stuck (or its timers loop)"
            for _ in range(_SETTLE):
                await asyncio.sleep(0)
            if not task.done() and not clock.jump():
                await asyncio.sleep(0.001)
        await task
        return records

    return asyncio.run(run())


class Recorder:
    """A MockTransport handler that notes when (on the fake clock) each request started."""

    def __init__(self, clock: FakeClock, respond: Callable[[httpx.Request], httpx.Response]):
        self.clock = clock
        self.respond = respond
        self.starts: list[tuple[str, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.starts.append((str(request.url), self.clock.elapsed()))
        return self.respond(request)

    def times(self, url: str) -> list[float]:
        return [at for started, at in self.starts if started == url]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


class SlowServer:
    """A MockTransport handler whose answers take ``seconds(request)`` on the fake clock.

    Notes the most requests in flight at once, per (scheme, host, port) and in all, and when
    (on the clock) each request finished.
    """

    def __init__(self, clock: FakeClock, seconds: Callable[[httpx.Request], float]) -> None:
        self.clock = clock
        self.seconds = seconds
        self.in_flight: Counter[tuple[str, str, int | None]] = Counter()
        self.peak: Counter[tuple[str, str, int | None]] = Counter()
        self.peak_all = 0
        self.finished: list[tuple[str, float]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.url.host, request.url.port)
        self.in_flight[key] += 1
        self.peak[key] = max(self.peak[key], self.in_flight[key])
        self.peak_all = max(self.peak_all, sum(self.in_flight.values()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.clock.call_later(self.seconds(request), done.set_result, None)
        try:
            await done
        finally:
            self.in_flight[key] -= 1
        self.finished.append((str(request.url), self.clock.elapsed()))
        return httpx.Response(200)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
