"""What the loopback server saw, counted for the tests (read under its lock)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ServerStats:
    """What the server saw; read by tests (e.g. the concurrency bound)."""

    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    #: Connections accepted (to see how many a client reuses).
    connections: int = 0
    #: 503s answered by ``/busy`` (requests past its threshold).
    busy_refused: int = 0
    #: 429s answered by ``/quota`` (requests past a window's quota).
    quota_refused: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    #: (method, path) → requests seen, to tell a retried POST from a retried GET.
    by_method: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.max_in_flight = self.in_flight
            self.requests = 0
            self.busy_refused = 0
            self.quota_refused = 0
            self.by_path.clear()
            self.by_method.clear()
