"""One way to write a moment: UTC, milliseconds, ``Z`` (the records' ``started_at``)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    """Now, as ``2026-01-01T00:00:00.000Z``.

    >>> len(now_iso()), now_iso().endswith("Z")
    (24, True)
    """
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
