"""The injectable clock: the scheduler's pacing and retry waits, the writer's grace after a
signal, the cache's look-up deadlines (record timestamps are in ``afetch._timestamps``).

What a thread waits for on a ``threading.Condition`` (the writer's linger, the cache worker's
batching and commit delays) stays on real time: it is real waiting, and no loop runs there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What afetch needs of time on the loop: a monotonic ``time()`` and timers on that time.

    The running event loop is one (``asyncio.get_running_loop()``), and the default; tests pass a
    fake clock that only moves when told to (tests/fake_clock.py), so waits are checked exactly
    instead of against wall-clock margins.
    """

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...
