"""The reading side of a run: URLs are handed to the run while it wants them and, with
``--ordered``, while the reorder window has room; otherwise the reader waits on one future."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable

from afetch.schedule.job import Item
from afetch.schedule.ordering import ReorderWindow


async def as_async(items: Iterable[Item] | AsyncIterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


#: URLs admitted in a row before the reader lets the loop turn. Admitting starts attempts; at
#: -c 500 the first 500 were all started in one go (~20 ms of Python) before the engine could
#: send the first of them.
ADMITS_PER_TURN = 64


class Intake:
    """The reader of one run. The run says how many URLs wait (:meth:`want`), which sets
    :attr:`wanted` within the bounds, and calls :meth:`wake` when the reader may go on."""

    __slots__ = ("_refill_at", "_waiter", "lookahead", "refilling", "wanted")

    def __init__(self, lookahead: int = 1, batch: int = 1) -> None:
        #: Whether the run wants more URLs now (a plain flag, checked per URL).
        self.wanted = True
        self._waiter: asyncio.Future[None] | None = None
        #: At most this many URLs wait; once ``lookahead - batch`` wait, input is read until
        #: ``lookahead`` do (``refilling``).
        self.lookahead = lookahead
        self._refill_at = lookahead - batch
        self.refilling = True

    def resize(self, lookahead: int, *, batch: int) -> None:
        """At most ``lookahead`` URLs wait from now on (refilled by ``batch``)."""
        self.lookahead = lookahead
        self._refill_at = lookahead - batch
        if not self.wanted:
            self.refilling = self.wanted = True
            self.wake()

    def want(self, waiting: int, idle: bool) -> None:
        """``waiting`` URLs wait, and ``idle``: a slot is free that nothing queued can use.

        Input is wanted then, and also, in batches, to keep URLs queued ahead: a finished
        attempt then starts the next URL in the same worker, without a wake-up, and the input
        is read once per batch rather than once per URL. Either way at most ``lookahead`` wait.
        """
        if waiting >= self.lookahead:
            self.refilling = self.wanted = False
            return
        if waiting <= self._refill_at:
            self.refilling = True
        if self.refilling or idle:
            if not self.wanted:
                self.wanted = True
                self.wake()
        else:
            self.wanted = False

    async def feed(
        self,
        urls: Iterable[Item] | AsyncIterable[Item],
        admit: Callable[[Item], None],
        window: ReorderWindow[object] | None,
    ) -> None:
        """Hand each URL of ``urls`` to ``admit``, waiting whenever the run wants no more or
        ``window`` (``--ordered``) is full."""
        # An async source is iterated as it is: no second generator per URL.
        source = urls if isinstance(urls, AsyncIterable) else as_async(urls)
        in_a_row = 0
        async for url in source:
            if window is not None:
                window.admit()
            admit(url)
            in_a_row += 1
            if in_a_row == ADMITS_PER_TURN:
                in_a_row = 0
                await asyncio.sleep(0)
            while not self.wanted or (window is not None and window.full):
                in_a_row = 0
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    def wake(self) -> None:
        """The reader checks again whether it may read on (input wanted, room in the window)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
