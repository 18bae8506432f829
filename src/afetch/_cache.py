"""``--cache DIR``: ETag and Last-Modified per URL, for conditional refetches.

One small JSON file per URL, ``DIR/XX/HASH.json`` (HASH: 32 hex digits of BLAKE2b over the URL
as given; XX: its first two, so no folder grows past a few thousand entries per million URLs).
Why files rather than sqlite3: several afetch processes (shards, overlapping cron runs, several
machines on a shared folder) write at once. A file per URL needs no lock at all: each update is
written to a unique temporary file and renamed over the entry, which is atomic, so a reader sees
the old entry or the new one, never a mix; the last writer wins, and both versions are valid.
sqlite3 would serialise every writer on one database lock (``database is locked`` under load)
and its locking is unreliable on network file systems. An interrupted run leaves at worst a
stray ``.tmp`` file; an unreadable entry is treated as absent (the URL is simply fetched again).
Entries are not fsynced: after a power loss the worst case is one unconditional refetch.

All of it is blocking file I/O, so the fetcher calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class _Headers(Protocol):
    def get(self, name: str, default: None = None) -> str | None: ...


class _HasHeaders(Protocol):
    headers: _Headers


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said identifies the representation it sent.

    >>> Validators(etag='"v1"', last_modified=None).request_headers()
    {'If-None-Match': '"v1"'}
    """

    etag: str | None
    last_modified: str | None

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    @classmethod
    def of(cls, response: _HasHeaders) -> Validators | None:
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if etag is None and last_modified is None:
            return None
        return cls(etag, last_modified)


class Cache:
    """Validators per URL under ``folder``; blocking, safe for concurrent processes.

    >>> import tempfile
    >>> cache = Cache(tempfile.mkdtemp())
    >>> cache.store("http://127.0.0.1/a", Validators('"v1"', None))
    >>> cache.lookup("http://127.0.0.1/a")
    Validators(etag='"v1"', last_modified=None)
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _entry(self, url: str) -> tuple[str, str]:
        key = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        folder = os.path.join(self.folder, key[:2])
        return folder, os.path.join(folder, key + ".json")

    def lookup(self, url: str) -> Validators | None:
        _, path = self._entry(url)
        try:
            with open(path, "rb") as handle:
                data = json.loads(handle.read(65536))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("url") != url:
            return None  # damaged, or (never in practice) another URL with the same hash
        etag, last_modified = data.get("etag"), data.get("last_modified")
        if not (isinstance(etag, str | None) and isinstance(last_modified, str | None)):
            return None
        if etag is None and last_modified is None:
            return None
        return Validators(etag, last_modified)

    def store(self, url: str, validators: Validators | None) -> None:
        """Replace the entry atomically; ``None`` removes it (the server dropped validators)."""
        folder, path = self._entry(url)
        if validators is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        os.makedirs(folder, exist_ok=True)
        data = {"url": url, "etag": validators.etag, "last_modified": validators.last_modified}
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(data, ensure_ascii=False).encode("utf-8"))
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


class BatchedCache:
    """:class:`Cache` off the event loop, in batches: the look-ups and stores asked for during
    one turn of the loop go to a worker thread as one job. One thread hop per URL was most of
    what ``--cache`` cost once requests got cheap (``bench/run.py`` options workload).

    >>> import asyncio, tempfile
    >>> async def roundtrip():
    ...     cache = BatchedCache(Cache(tempfile.mkdtemp()))
    ...     await cache.store("http://127.0.0.1/a", Validators('"v1"', None))
    ...     return await cache.lookup("http://127.0.0.1/a")
    >>> asyncio.run(roundtrip())
    Validators(etag='"v1"', last_modified=None)
    """

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._jobs: list[tuple[Callable[[], object], asyncio.Future[Any]]] = []

    def lookup(self, url: str) -> asyncio.Future[Validators | None]:
        return self._submit(lambda: self._cache.lookup(url))

    def store(self, url: str, validators: Validators | None) -> asyncio.Future[None]:
        return self._submit(lambda: self._cache.store(url, validators))

    def _submit(self, job: Callable[[], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._jobs:
            loop.call_soon(self._flush, loop)
        self._jobs.append((job, future))
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, self._jobs = self._jobs, []

        def run_all() -> list[tuple[bool, Any]]:
            outcomes = []
            for job, _ in jobs:
                try:
                    outcomes.append((True, job()))
                except Exception as exc:  # handed to the one who asked
                    outcomes.append((False, exc))
            return outcomes

        def deliver(done: asyncio.Future[list[tuple[bool, Any]]]) -> None:
            if done.cancelled() or done.exception() is not None:
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(done.exception() or asyncio.CancelledError())
                return
            for (_, future), (ok, value) in zip(jobs, done.result(), strict=True):
                if future.done():
                    continue  # its fetch was cancelled meanwhile
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

        loop.run_in_executor(None, run_all).add_done_callback(deliver)
