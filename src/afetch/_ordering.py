"""``--ordered``: records in input order, from a bounded reorder window.

Each URL takes a place in the window before it is scheduled and gives it back when its record
is taken by the consumer, in input order. So at most ``size`` URLs are between "scheduled" and
"emitted" (in flight, finished and waiting for an earlier one, or queued for the consumer).
When the oldest URL is slow and the window is full, nothing new starts until it completes:
memory stays bounded, at the price of throughput behind a slow head (a timeout bounds the wait).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

#: The window holds this many times ``concurrency`` URLs.
WINDOW_FACTOR = 8

T = TypeVar("T")


class ReorderWindow(Generic[T]):
    """Releases results in index order; ``admit`` waits while the window is full.

    >>> window = ReorderWindow[str](4)
    >>> window.complete(1, "b"), window.complete(0, "a"), window.complete(2, "c")
    ([], ['a', 'b'], ['c'])
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._room = asyncio.Semaphore(size)
        self._waiting: dict[int, T] = {}
        self._next = 0

    async def admit(self) -> None:
        """Take a place for the next URL; waits while ``size`` URLs are not yet emitted."""
        await self._room.acquire()

    def taken(self) -> None:
        """The consumer took a result: its place is free again."""
        self._room.release()

    def complete(self, index: int, result: T) -> list[T]:
        """Store the result for ``index``; return the results now due, in order."""
        self._waiting[index] = result
        due = []
        while self._next in self._waiting:
            due.append(self._waiting.pop(self._next))
            self._next += 1
        return due

    def drain(self) -> list[T]:
        """After an interruption: the finished results still waiting, in input order."""
        rest = [self._waiting[index] for index in sorted(self._waiting)]
        self._waiting.clear()
        return rest
