"""The record: what afetch says about one input URL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FetchError:
    """Why a URL could not be fetched. ``type`` is one of the documented error types."""

    type: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """The outcome of one input URL; serialised as one JSON Lines record.

    >>> r = Record(url="http://127.0.0.1/", status=200, started_at="2026-01-01T00:00:00.000Z")
    >>> r.ok, r.to_dict()["status"]
    (True, 200)
    """

    url: str
    final_url: str | None = None
    status: int | None = None
    error: FetchError | None = None
    elapsed_ms: float = 0.0
    bytes: int = 0
    content_type: str | None = None
    http_version: str | None = None
    redirects: int = 0
    attempts: int = 1
    started_at: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400

    def to_dict(self) -> dict[str, Any]:
        # Key order is part of the documented schema.
        return {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "ok": self.ok,
            "error": None
            if self.error is None
            else {"type": self.error.type, "message": self.error.message},
            "elapsed_ms": self.elapsed_ms,
            "bytes": self.bytes,
            "content_type": self.content_type,
            "http_version": self.http_version,
            "redirects": self.redirects,
            "attempts": self.attempts,
            "started_at": self.started_at,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
