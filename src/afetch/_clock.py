"""The scheduler's injectable clock (record timestamps are in ``afetch._timestamps``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the scheduler needs of time: a monotonic ``time()`` and timers on that time.

    The running event loop is one (``asyncio.get_running_loop()``), and the default; tests pass a
    fake clock that only moves when told to, so pacing and retry waits are checked exactly
    instead of against wall-clock margins.
    """

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...
