"""One way to write a moment: UTC, milliseconds, ``Z`` (the records' ``started_at``)."""

from __future__ import annotations

import math
import time

# Formatting the date and time is the costly part and changes once a second: cached.
_second = -1
_prefix = ""
#: ".000Z" to ".999Z": the milliseconds, formatted once.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
# math.floor of a float costs a fraction of int()'s conversion (the same for a positive number).
_floor, _time = math.floor, time.time


def now_iso() -> str:
    """Now, as ``2026-01-01T00:00:00.000Z``.

    >>> len(now_iso()), now_iso().endswith("Z")
    (24, True)
    """
    global _second, _prefix
    now = _time()
    into = now - _second  # exact: seconds into the second cached
    if not 0.0 <= into < 1.0:
        _second = second = _floor(now)
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        into = now - second
    return _prefix + _MILLIS[_floor(into * 1000)]
