"""The event loop's side of the look-ups sent to the worker thread: each one waiting
(:class:`Pending`), its expiry at its deadline (:class:`Expiry`), and the answers of a batch
delivered on the loop (:func:`deliver`). An answer is told once, on the loop, never from the
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from afetch._clock import Clock, TimerHandle
from afetch.cache.validators import Validators

#: Told a look-up's answer, on the event loop: the validators, or None for a miss.
Answer = Callable[[Validators | None], None]


class Pending:
    """One look-up: its URL, whom to tell (None once told), on which loop, and by when."""

    __slots__ = ("answer", "deadline", "loop", "url")

    def __init__(
        self, url: str, answer: Answer, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> None:
        self.url = url
        self.answer: Answer | None = answer
        self.loop = loop
        self.deadline = deadline


def tell(pending: Pending, found: Validators | None) -> None:
    """Answer ``pending`` unless it was answered already (expired, or by the thread)."""
    answer = pending.answer
    if answer is not None:
        pending.answer = None
        try:
            answer(found)
        except Exception as exc:  # its fetch's trouble: the other answers are still due
            pending.loop.call_exception_handler(
                {"message": "a cache look-up's callback failed", "exception": exc}
            )


def settle(future: asyncio.Future[Validators | None], found: Validators | None) -> None:
    if not future.done():  # its fetch may have been cancelled meanwhile
        future.set_result(found)


class Expiry:
    """Look-ups still unanswered at their deadline become misses, on the loop: an index that
    is locked or hangs costs at most the worker's ``LOOKUP_WAIT_S`` per URL, and never delays
    an attempt past its own deadline (the fetcher lets the engine keep that deadline). One timer
    at a time, not one per look-up. Deadlines are on ``clock``: the loop's, or the one the
    fetcher's deadlines are on (tests fake it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock | None = None) -> None:
        self.loop = loop
        self.clock: Clock = loop if clock is None else clock
        self._pending: deque[Pending] = deque()
        self._timer: TimerHandle | None = None

    def watch(self, ask: Pending) -> None:
        pending = self._pending
        # Answered look-ups leave at once: kept for a second, thousands of them would outlive
        # two garbage collections each and make the full collections run.
        while pending and pending[0].answer is None:
            pending.popleft()
        pending.append(ask)
        if self._timer is None:
            self._timer = self.clock.call_at(ask.deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        pending, now = self._pending, self.clock.time()
        # Deadlines come nearly in order (the same --timeout from each attempt's start).
        while pending and (pending[0].answer is None or pending[0].deadline <= now):
            tell(pending.popleft(), None)
        if pending:
            self._timer = self.clock.call_at(max(pending[0].deadline, now), self._expire)


def call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


def deliver(
    loop: asyncio.AbstractEventLoop, lookups: list[Pending], found: dict[int, Validators | None]
) -> None:
    get = found.get
    for index, ask in enumerate(lookups):
        if ask.loop is loop:  # not another loop's
            tell(ask, get(index))  # not found: the index failed, a miss
