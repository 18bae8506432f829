"""``--ordered``: records in input order, from a bounded reorder window.

Each URL takes a place in the window before it is scheduled and gives it back when its record
is taken by the consumer, in input order. So at most ``size`` URLs are between "scheduled" and
"emitted" (in flight, finished and waiting for an earlier one, or queued for the consumer).
When the oldest URL is slow and the window is full, nothing new is read until it completes:
memory stays bounded, at the price of throughput behind a slow head (a timeout bounds the wait).
"""

from __future__ import annotations

from typing import Generic, TypeVar

#: The window holds this many times ``concurrency`` URLs.
WINDOW_FACTOR = 8

T = TypeVar("T")


class ReorderWindow(Generic[T]):
    """Releases results in index order, and counts the places taken: the scheduler reads no
    more input while the window is :attr:`full` (a flag it checks per URL, as its own bounds;
    no semaphore to acquire per URL).

    >>> window = ReorderWindow[str](4)
    >>> window.complete(1, "b"), window.complete(0, "a"), window.complete(2, "c")
    ([], ['a', 'b'], ['c'])
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._inside = 0  # places taken: admitted and not yet taken by the consumer
        self._waiting: dict[int, T] = {}
        self._next = 0

    @property
    def full(self) -> bool:
        """Whether ``size`` URLs are admitted and not yet taken: admit no more until then."""
        return self._inside >= self.size

    def admit(self) -> None:
        """Take a place for the next URL."""
        self._inside += 1

    def taken(self, count: int = 1) -> None:
        """The consumer took ``count`` results: their places are free again."""
        self._inside -= count

    def complete(self, index: int, result: T) -> list[T]:
        """Store the result for ``index``; return the results now due, in order."""
        waiting = self._waiting
        if index != self._next:
            waiting[index] = result
            return []
        due = [result]
        index += 1
        while index in waiting:
            due.append(waiting.pop(index))
            index += 1
        self._next = index
        return due

    def drain(self) -> list[T]:
        """After an interruption: the finished results still waiting, in input order."""
        rest = [self._waiting[index] for index in sorted(self._waiting)]
        self._waiting.clear()
        return rest
