"""One way to write a moment: UTC, milliseconds, ``Z`` (the records' ``started_at``)."""

from __future__ import annotations

import time

# Formatting the date and time is the costly part and changes once a second: cached.
_second = -1
_prefix = ""
#: ".000Z" to ".999Z": the milliseconds, formatted once.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def now_iso() -> str:
    """Now, as ``2026-01-01T00:00:00.000Z``.

    >>> len(now_iso()), now_iso().endswith("Z")
    (24, True)
    """
    global _second, _prefix
    now = time.time()
    second = int(now)
    if second != _second:
        _second = second
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return _prefix + _MILLIS[int((now - second) * 1000)]
