"""One :class:`BatchedCache` per cache folder in a process, shared by every run that uses the
folder (a run that follows another sees the entries the first has not written yet), and the
writing of what they hold at exit.
"""

from __future__ import annotations

import atexit
import os
import threading
import time

from afetch.cache import index
from afetch.cache.index import Index
from afetch.cache.worker import BatchedCache

_caches: dict[str, BatchedCache] = {}
_caches_lock = threading.Lock()


def _forget_caches() -> None:
    """In a forked child: the parent's worker threads do not exist here; start afresh."""
    global _caches_lock
    _caches_lock = threading.Lock()
    _caches.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_caches)


def cache_for(folder: str) -> BatchedCache:
    """The cache of ``folder`` in this process (made on first use)."""
    key = os.path.realpath(folder)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            if not _caches:
                atexit.register(_write_all_at_exit)
            cache = _caches[key] = BatchedCache(Index(folder))
        return cache


def flush(timeout: float | None = None) -> bool:
    """Wait until every store queued in this process is written (or failed); False if
    ``timeout`` seconds passed first. Blocking: for tests and the end of the process."""
    with _caches_lock:
        caches = list(_caches.values())
    deadline = None if timeout is None else time.monotonic() + timeout
    return all(cache.flush(deadline) for cache in caches)


def _write_all_at_exit() -> None:
    flush(index.BUSY_TIMEOUT_S + 5)
