"""``--cache DIR``: ETag and Last-Modified per URL, for conditional refetches.

One SQLite index per cache folder, ``DIR/index.sqlite`` (with SQLite's ``-wal`` and ``-shm``
files beside it, nothing else): a row per URL, keyed by 64 bits of BLAKE2b over the URL as
given, holding the URL itself (a row for another URL with the same key is not ours: a miss) and
its validators. It used to be one small JSON file per URL; creating a file cost 500–950 µs of
CPU, more than the whole request (docs/performance.md), a row costs a few microseconds.

Several processes (shards, overlapping cron runs) may share a folder: the index is in WAL
mode, so readers never wait for a writer, and writers take turns (``BEGIN IMMEDIATE``, waiting
up to :data:`BUSY_TIMEOUT_S` for the lock; a batch's transaction holds it for milliseconds).
What files allowed and this does not: sharing one folder between *machines* over NFS, where
SQLite's locks are unreliable. A cache folder of the old format (``DIR/XX/HASH.json``) is
simply not read: each URL is fetched unconditionally once, and the old files can be deleted.

It is a cache: an index that cannot be read (damaged, not a database, from a newer afetch)
means misses, i.e. unconditional fetches, never a crash; a store that cannot be written is that
URL's error, as any other failure. The index is not fsynced per commit (``synchronous=NORMAL``):
after a power loss the last commits may be lost (unconditional refetches), the index is not
damaged.

All of it is blocking I/O: :class:`BatchedCache` runs it in one worker thread per cache, a
batch of look-ups and stores at a time, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: The index file in the cache folder.
INDEX = "index.sqlite"
#: How long a store waits for another process's write transaction to end.
BUSY_TIMEOUT_S = 30.0
#: The index's format; an index with a higher number is from a newer afetch and is not touched.
_FORMAT = 1
#: Look-ups per query (a parameter per key; SQLite allows 999 in old versions).
_CHUNK = 512
#: The worker thread stops (and closes the index) after this long without work.
IDLE_S = 1.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS validators ("
    "key INTEGER PRIMARY KEY, url TEXT NOT NULL, etag TEXT, last_modified TEXT)"
)
_UPSERT = "INSERT OR REPLACE INTO validators (key, url, etag, last_modified) VALUES (?, ?, ?, ?)"
_DELETE = "DELETE FROM validators WHERE key = ? AND url = ?"
#: SELECT statements by number of keys (powers of two, padded): few distinct statements, so
#: the sqlite3 module's statement cache keeps them all prepared.
_SELECTS: dict[int, str] = {}


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


class CacheError(OSError):
    """The index could not be written (reported as that URL's error)."""


def _key(url: str) -> int:
    digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _select(count: int) -> str:
    sql = _SELECTS.get(count)
    if sql is None:
        marks = ",".join("?" * count)
        sql = _SELECTS[count] = (
            f"SELECT key, url, etag, last_modified FROM validators WHERE key IN ({marks})"
        )
    return sql


class Cache:
    """Validators per URL in ``folder``'s index; blocking, safe for concurrent processes.

    One thread at a time per instance (:class:`BatchedCache` keeps to that); the index is
    opened on first use and closed by :meth:`close`.

    >>> import tempfile
    >>> cache = Cache(tempfile.mkdtemp())
    >>> cache.store("http://127.0.0.1/a", Validators('"v1"', None))
    >>> cache.lookup("http://127.0.0.1/a")
    Validators(etag='"v1"', last_modified=None)
    >>> cache.close()
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, INDEX)
        self._db: sqlite3.Connection | None = None

    def lookup(self, url: str) -> Validators | None:
        return self.lookup_many([url])[0]

    def store(self, url: str, validators: Validators | None) -> None:
        """Replace the entry; ``None`` removes it (the server dropped validators)."""
        self.store_many([(url, validators)])

    def lookup_many(self, urls: Sequence[str]) -> list[Validators | None]:
        """The validators of each URL (``None``: none known, or the index is unusable)."""
        try:
            db = self._open()
            return [
                found
                for start in range(0, len(urls), _CHUNK)
                for found in self._lookup_chunk(db, urls[start : start + _CHUNK])
            ]
        except sqlite3.Error:
            self._reset()
            return [None] * len(urls)

    def store_many(self, entries: Iterable[tuple[str, Validators | None]]) -> None:
        """Write ``entries`` in one transaction; raises :class:`CacheError` if that fails."""
        upserts, deletes = [], []
        for url, validators in entries:
            if validators is None:
                deletes.append((_key(url), url))
            else:
                upserts.append((_key(url), url, validators.etag, validators.last_modified))
        try:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")  # the write lock first: no deadlock with a reader
            try:
                if upserts:
                    db.executemany(_UPSERT, upserts)
                if deletes:
                    db.executemany(_DELETE, deletes)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._reset()
            raise CacheError(f"cannot write the cache index {self.path}: {exc}") from None

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _lookup_chunk(self, db: sqlite3.Connection, urls: Sequence[str]) -> list[Validators | None]:
        keys = [_key(url) for url in urls]
        size = 1
        while size < len(keys):
            size *= 2
        rows = db.execute(_select(size), keys + keys[:1] * (size - len(keys))).fetchall()
        found = {key: (url, etag, last_modified) for key, url, etag, last_modified in rows}
        result: list[Validators | None] = []
        for key, url in zip(keys, urls, strict=True):
            row = found.get(key)
            # Another URL with the same 64-bit key is not ours; an empty row is no use.
            if row is None or row[0] != url or (row[1] is None and row[2] is None):
                result.append(None)
            elif isinstance(row[1], str | None) and isinstance(row[2], str | None):
                result.append(Validators(row[1], row[2]))
            else:
                result.append(None)  # written by something else than afetch
        return result

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        # Never through a symbolic link (or anything but a file) planted at the index's name:
        # the index is written where the user said, nowhere else.
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise sqlite3.DatabaseError(f"{self.path} is not a regular file")
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _FORMAT:
                raise sqlite3.DatabaseError(
                    f"{self.path} is from a newer afetch (format {version})"
                )
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # persistent: once per index
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=OFF")  # a replaced row need not be zeroed
            if version < _FORMAT:
                db.execute("BEGIN IMMEDIATE")
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version={_FORMAT}")
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _reset(self) -> None:
        """After a failure: close the index, so the next batch opens it afresh."""
        self.close()


class BatchedCache:
    """:class:`Cache` off the event loop, in batches: whatever look-ups and stores were asked
    for while the worker thread was busy go to it as one batch (one transaction for the stores,
    one query per 512 look-ups) and come back with one wake-up of the loop. A thread hop per
    URL was most of what ``--cache`` cost once requests got cheap.

    The thread starts on first use and ends (closing the index) after :data:`IDLE_S` without
    work, so nothing needs closing.

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
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._lookups: list[tuple[str, asyncio.Future[Validators | None]]] = []
        self._stores: list[tuple[str, Validators | None, asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False  # a worker thread exists
        self._idle = False  # ... and waits to be woken

    def lookup(self, url: str) -> asyncio.Future[Validators | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Validators | None] = loop.create_future()
        with self._lock:
            self._lookups.append((url, future))
            self._kick(loop)
        return future

    def store(self, url: str, validators: Validators | None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._stores.append((url, validators, future))
            self._kick(loop)
        return future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """With the lock held: make sure a worker thread will see the new job."""
        self._loop = loop
        if not self._running:
            self._running = True
            threading.Thread(target=self._main, name="afetch-cache", daemon=True).start()
        elif self._idle:
            self._idle = False
            self._wake.notify()

    def _main(self) -> None:
        while True:
            with self._lock:
                if not self._lookups and not self._stores:
                    self._idle = True
                    self._wake.wait(IDLE_S)
                    self._idle = False
                lookups, self._lookups = self._lookups, []
                stores, self._stores = self._stores, []
                loop = self._loop
            if lookups or stores:
                self._run_batch(loop, lookups, stores)
                continue
            # Idle: close the index before saying so, so a new thread never shares it.
            self._cache.close()
            with self._lock:
                if not self._lookups and not self._stores:
                    self._running = False
                    return

    def _run_batch(
        self,
        loop: asyncio.AbstractEventLoop | None,
        lookups: list[tuple[str, asyncio.Future[Validators | None]]],
        stores: list[tuple[str, Validators | None, asyncio.Future[None]]],
    ) -> None:
        cache = self._cache
        failure: BaseException | None = None
        found: list[Validators | None] | BaseException
        try:
            if stores:
                try:
                    cache.store_many((url, validators) for url, validators, _ in stores)
                except CacheError as exc:  # each store of the batch reports it
                    failure = exc
            found = cache.lookup_many([url for url, _ in lookups]) if lookups else []
        except Exception as exc:  # never leave a fetch waiting for an answer that won't come
            failure = found = exc
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_deliver, lookups, found, stores, failure)


def _deliver(
    lookups: list[tuple[str, asyncio.Future[Validators | None]]],
    found: list[Validators | None] | BaseException,
    stores: list[tuple[str, Validators | None, asyncio.Future[None]]],
    failure: BaseException | None,
) -> None:
    for index, (_, future) in enumerate(lookups):
        if future.done():
            continue  # its fetch was cancelled meanwhile
        if isinstance(found, BaseException):
            future.set_exception(found)
        else:
            future.set_result(found[index])
    for _, _, stored in stores:
        if stored.done():
            continue
        if failure is None:
            stored.set_result(None)
        else:
            stored.set_exception(failure)
