"""Finished records on their way from the run to its consumer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from afetch._record import Record

#: Put after the last record: the run is over.
DONE = object()


class Results:
    """Finished records on their way to the consumer: a deque and one waiter (no bound needed:
    the scheduler holds at most ``concurrency`` untaken records)."""

    __slots__ = ("_waiter", "items")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Until something was put (returns at once if something is there)."""
        while not self.items:
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def batches(self) -> AsyncIterator[list[Record]]:
        """What was put, a list at a time (what came in one turn of the loop), up to
        :data:`DONE`."""
        items = self.items
        while True:
            if not items:
                await self.wait()
            batch = list(items)
            items.clear()
            done = batch[-1] is DONE
            if done:
                batch.pop()
            if batch:
                yield batch
            if done:
                return
