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

It is a cache, so trouble with it never fails a URL: an index that cannot be read (damaged,
not a database, from a newer afetch, a symbolic link, which is never followed) means misses,
i.e. unconditional fetches; entries that cannot be written are lost with one warning on stderr.
The index is not fsynced per commit (``synchronous=NORMAL``): after a power loss the last
commits may be lost (unconditional refetches), the index is not damaged.

All of it is blocking I/O: :class:`BatchedCache` runs it in one worker thread per folder (look-
ups in batches, stores written behind in large transactions), never on the event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import hashlib
import json
import os
import sqlite3
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import chain
from typing import Any, NamedTuple, Protocol

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
#: A look-up not answered within this long is a miss (the URL is fetched unconditionally).
LOOKUP_WAIT_S = 1.0
#: Look-ups come one per loop turn (an attempt starts when another ends): the thread waits
#: this long for more before querying, unless :data:`LOOKUP_BATCH` are waiting already. A
#: trip to the thread and back per look-up cost more than the rest of a cached request.
LOOKUP_LINGER_S = 0.002
LOOKUP_BATCH = 128
#: Stores are committed together: this many at most...
STORE_BATCH = 5000
#: ... and none waits longer than this. A commit writes every page it changed to the WAL, and
#: random keys spread a batch over many pages: the fewer commits, the fewer pages per entry
#: (10,000 new entries: 2,634 page writes at 2 s, 8,500 at 0.5 s).
STORE_DELAY_S = 2.0
#: Unwritten stores beyond which a store is dropped (with a warning).
STORE_BACKLOG = 20_000
#: An index of at most this many entries is read whole into memory when the worker opens it
#: (an :class:`IndexImage`, about 500 bytes an entry): every look-up is then answered on
#: the loop at once, with no trip to the worker thread.
IMAGE_MAX = 20_000
#: A larger index, up to this many entries, gets a :class:`KeyFilter` instead (a miss is known
#: at once, a hit asks the thread); beyond it every look-up asks the index. Building either
#: costs about a microsecond per entry in the worker thread.
FILTER_MAX = 1_000_000
#: With a :class:`KeyFilter`, the URLs the scheduler reads ahead are looked up before they
#: start, a loop turn's worth at a time (:meth:`_Worker.prefetch`); the answers of this many
#: such batches are kept for :meth:`_Worker.recall`, older ones are dropped (their URLs have
#: started by then, or never will).
PREFETCH_KEEP = 8
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS validators ("
    "key INTEGER PRIMARY KEY, url TEXT NOT NULL, etag TEXT, last_modified TEXT)"
)
_UPSERT = "INSERT OR REPLACE INTO validators (key, url, etag, last_modified) VALUES "
#: Rows per INSERT statement, at most (4 parameters a row; old SQLite allows 999 parameters).
_UPSERT_ROWS = 128
_DELETE = "DELETE FROM validators WHERE key = ? AND url = ?"
#: The entries of the index, a page at a time in key order, for its IndexImage or KeyFilter:
#: the first page, then each after the last key of the one before. Rows afetch did not write
#: (a URL or a validator that is no text) are left out, as look-ups leave them out.
_VALID = (
    "typeof(url) = 'text'"
    " AND typeof(etag) IN ('text', 'null') AND typeof(last_modified) IN ('text', 'null')"
)
_PAGES = tuple(
    f"SELECT key, url, etag, last_modified FROM validators WHERE {where} {_VALID}"
    " ORDER BY key LIMIT ?"
    for where in ("", "key > ? AND")
)
_PAGES_JSON = tuple(
    f"SELECT json_group_array(json_array(url, etag, last_modified)), max(key) FROM ({page})"
    for page in _PAGES
)
_PAGE = 4096
#: SELECT and INSERT statements by number of keys or rows (powers of two, padded): few distinct
#: statements, so the sqlite3 module's statement cache keeps them all prepared.
_SELECTS: dict[tuple[int, bool], str] = {}
_UPSERTS: dict[int, str] = {}


class _HasHeaders(Protocol):
    status: int

    def header(self, name: str) -> str | None: ...


class Validators(NamedTuple):
    """What a server said identifies the representation it sent. A tuple: made and compared
    in C, once per response of a --cache run.

    >>> Validators(etag='"v1"', last_modified=None).request_headers()
    {'If-None-Match': '"v1"'}
    """

    etag: str | None
    last_modified: str | None

    def request_headers(self) -> dict[str, str]:
        return dict(self.header_pairs())

    def header_pairs(self) -> tuple[tuple[str, str], ...]:
        """The conditional request headers, as (name, value) pairs to append to a request's."""
        etag, last_modified = self.etag, self.last_modified
        if last_modified is None:
            return () if etag is None else (("If-None-Match", etag),)
        if etag is None:
            return (("If-Modified-Since", last_modified),)
        return (("If-None-Match", etag), ("If-Modified-Since", last_modified))

    @classmethod
    def of(cls, response: _HasHeaders) -> Validators | None:
        etag, last_modified = response.header("etag"), response.header("last-modified")
        if etag is None and last_modified is None:
            return None
        return cls(etag, last_modified)

    @classmethod
    def to_keep(cls, cached: Validators | None, response: _HasHeaders) -> Validators | None:
        """What the cache should hold for a URL once ``response`` came for a request made with
        ``cached``: ``cached`` itself when nothing changes (an error page says nothing about
        the representation we keep; a 304 may omit unchanged validators)."""
        status = response.status
        if status == 304:
            return cls.of(response) or cached
        if 200 <= status < 300:
            return cls.of(response)
        return cached


class Unknown(enum.Enum):
    """:meth:`KeyFilter.recall`'s answer when only the index can tell."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN
#: What the worker knows of a URL without asking the index: its validators, None (certainly
#: not cached) or UNKNOWN.
Recalled = Validators | None | Unknown
#: An entry as the worker keeps it: a plain tuple (see _Worker.__init__); None: removed.
Pair = tuple[str | None, str | None] | None


class KeyFilter:
    """Which URLs an index may hold: a Bloom filter over the URLs' Python hashes (two bits a
    URL, at least 32 bits of room per URL: about 0.4% false positives), so that the look-up of
    a URL that is certainly not cached needs no trip to the worker thread. A false positive
    costs only that trip; there are no false negatives for the URLs it was built from and
    given since. Python's hash of a string is computed once per string object and kept in it:
    checking a URL costs no hashing of its own (the index's 64-bit BLAKE2b keys would).

    >>> known = KeyFilter(1)
    >>> known.add("http://127.0.0.1/a")
    >>> known.recall("http://127.0.0.1/a"), known.recall("http://127.0.0.1/b")
    (<Unknown.UNKNOWN: 'unknown'>, None)
    """

    __slots__ = ("_bits", "_mask")

    def __init__(self, count: int) -> None:
        size = 1 << 16
        while size < 32 * count:
            size *= 2
        self._bits = bytearray(size // 8)
        self._mask = size - 1

    def add(self, url: str) -> None:
        bits, mask, key = self._bits, self._mask, hash(url)
        low, high = key & mask, (key >> 32) & mask
        bits[low >> 3] |= 1 << (low & 7)
        bits[high >> 3] |= 1 << (high & 7)

    def note(self, url: str, pair: Pair) -> KeyFilter:
        """``url``'s entry is now ``pair`` (a removed one may stay: no false negatives)."""
        if pair is not None:
            self.add(url)
        return self

    def recall(self, url: str) -> Recalled:
        bits, mask, key = self._bits, self._mask, hash(url)
        low, high = key & mask, (key >> 32) & mask
        if bits[low >> 3] & (1 << (low & 7)) and bits[high >> 3] & (1 << (high & 7)):
            return UNKNOWN
        return None


class IndexImage:
    """A small index whole in memory (see :data:`IMAGE_MAX`): every look-up answered at once.

    >>> image = IndexImage({"http://127.0.0.1/a": ('"v1"', None)})
    >>> image.recall("http://127.0.0.1/a"), image.recall("http://127.0.0.1/b")
    (Validators(etag='"v1"', last_modified=None), None)
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: dict[str, tuple[str | None, str | None]]) -> None:
        self._pairs = pairs

    def note(self, url: str, pair: Pair) -> IndexImage | KeyFilter:
        """``url``'s entry is now ``pair`` (None: removed); what to keep from now on: this
        image, or a :class:`KeyFilter` of it once it outgrew :data:`IMAGE_MAX` (a cold run
        stores an entry per URL: memory stays bounded)."""
        pairs = self._pairs
        if pair is None:
            pairs.pop(url, None)
            return self
        pairs[url] = pair
        if len(pairs) <= IMAGE_MAX:
            return self
        known = KeyFilter(4 * len(pairs))  # room to grow before false positives add up
        for stored in pairs:
            known.add(stored)
        return known

    def recall(self, url: str) -> Recalled:
        pair = self._pairs.get(url)
        return None if pair is None else Validators(*pair)


class CacheError(OSError):
    """The index could not be written (the worker reports it once, as a warning)."""


def _keys(urls: Iterable[str]) -> list[int]:
    """The index's key of each URL: 64 bits of BLAKE2b, as a signed integer. In one
    comprehension, no call per URL: the worker thread computes these holding the GIL, which
    the event loop wants too."""
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    return [
        from_bytes(
            blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
            "little",
            signed=True,
        )
        for url in urls
    ]


def _select(count: int, *, as_json: bool) -> str:
    sql = _SELECTS.get((count, as_json))
    if sql is None:
        marks = ",".join("?" * count)
        # Rows afetch did not write (a URL or a validator that is no text) are left out.
        where = f"WHERE key IN ({marks}) AND {_VALID}"
        if as_json:
            # All the rows in one JSON text: SQLite returns it in one step, so the GIL is
            # released and taken back once per query, not once per row.
            columns = "json_group_array(json_array(key, url, etag, last_modified))"
        else:
            columns = "key, url, etag, last_modified"
        sql = _SELECTS[count, as_json] = f"SELECT {columns} FROM validators {where}"
    return sql


def _padded(count: int) -> int:
    size = 1
    while size < count:
        size *= 2
    return size


def _upsert(db: sqlite3.Connection, rows: list[tuple[int, str, str | None, str | None]]) -> None:
    """Many rows per statement, not ``executemany``: each statement releases the GIL while
    SQLite runs, and a release per row would hand the GIL to the busy event loop and back a
    thousand times per batch (a context switch each). Padding repeats the last row: inserting
    it twice is the same as once. Rows go in key order: each B-tree page is then visited once
    per batch, not once per row (a third less CPU for 10,000 new entries)."""
    rows.sort()
    for start in range(0, len(rows), _UPSERT_ROWS):
        chunk = rows[start : start + _UPSERT_ROWS]
        size = _padded(len(chunk))
        sql = _UPSERTS.get(size)
        if sql is None:
            sql = _UPSERTS[size] = _UPSERT + ",".join(["(?, ?, ?, ?)"] * size)
        chunk += chunk[-1:] * (size - len(chunk))
        db.execute(sql, list(chain.from_iterable(chunk)))


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """Put a new index in WAL mode. SQLite answers "database is locked" at once, without
    waiting, while another process creates the same index: wait for it here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)  # in the worker thread, never on the loop


class Cache:
    """Validators per URL in ``folder``'s index; blocking, safe for concurrent processes.

    Its connection to the index is opened on first use, closed by :meth:`close`, and used by
    one thread at a time (a lock; :class:`BatchedCache` calls it from one thread anyway).

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
        self._lock = threading.Lock()
        self._json = True  # SQLite has its JSON functions (built in since 3.38)

    def lookup(self, url: str) -> Validators | None:
        return self.lookup_many([url])[0]

    def store(self, url: str, validators: Validators | None) -> None:
        """Replace the entry; ``None`` removes it (the server dropped validators)."""
        self.store_many([(url, validators)])

    def lookup_many(self, urls: Sequence[str]) -> list[Validators | None]:
        """The validators of each URL (``None``: none known, or the index is unusable)."""
        with self._lock:
            try:
                db = self._open()
                return [
                    found
                    for start in range(0, len(urls), _CHUNK)
                    for found in self._lookup_chunk(db, urls[start : start + _CHUNK])
                ]
            except sqlite3.Error:
                self._close()  # opened afresh next time
                return [None] * len(urls)

    def store_many(
        self, entries: Iterable[tuple[str, Validators | tuple[str | None, str | None] | None]]
    ) -> None:
        """Write ``entries`` (validators, or (etag, last_modified) pairs; None removes) in one
        transaction; raises :class:`CacheError` if that fails."""
        entries = list(entries)
        upserts, deletes = [], []
        for key, (url, validators) in zip(_keys([url for url, _ in entries]), entries, strict=True):
            if validators is None:
                deletes.append((key, url))
            else:
                upserts.append((key, url, validators[0], validators[1]))
        with self._lock:
            try:
                db = self._open()
                db.execute("BEGIN IMMEDIATE")  # the write lock first: no deadlock with a reader
                try:
                    if upserts:
                        _upsert(db, upserts)
                    if deletes:
                        db.executemany(_DELETE, deletes)
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._close()  # opened afresh next time
                raise CacheError(f"cannot write the cache index {self.path}: {exc}") from None

    def known(self) -> IndexImage | KeyFilter | None:
        """What the index holds now, for look-ups that need not ask it: all of it (an
        :class:`IndexImage`) up to :data:`IMAGE_MAX` entries, its URLs (a :class:`KeyFilter`) up
        to :data:`FILTER_MAX`; None for a larger index or one that cannot be read."""
        with self._lock:
            try:
                db = self._open()
                count = db.execute("SELECT count(*) FROM validators").fetchone()[0]
                if count > FILTER_MAX:
                    return None
                if count <= IMAGE_MAX:
                    return IndexImage(
                        {
                            url: (etag, last_modified)
                            for url, etag, last_modified in self._entries(db)
                            if etag is not None or last_modified is not None  # no use
                        }
                    )
                known = KeyFilter(count)
                add = known.add
                for url, _, _ in self._entries(db):
                    add(url)
                return known
            except sqlite3.Error:
                self._close()  # opened afresh next time
                return None

    def _entries(self, db: sqlite3.Connection) -> Iterator[Sequence[Any]]:
        """Every valid (url, etag, last_modified) row of the index, a page at a time."""
        params: tuple[int, ...] = (_PAGE,)
        while True:
            first = len(params) == 1
            if self._json:
                # A page in one JSON text: the GIL is taken back once, not once per row.
                text, last = db.execute(_PAGES_JSON[0 if first else 1], params).fetchone()
                rows = json.loads(text)
            else:
                rows = db.execute(_PAGES[0 if first else 1], params).fetchall()
                last = rows[-1][0] if rows else None
                rows = [row[1:] for row in rows]
            yield from rows
            if last is None or len(rows) < _PAGE:
                return
            params = (last, _PAGE)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _lookup_chunk(self, db: sqlite3.Connection, urls: Sequence[str]) -> list[Validators | None]:
        keys = _keys(urls)
        size = _padded(len(keys))
        params = keys + keys[:1] * (size - len(keys))
        rows: list[Any]
        if self._json:
            rows = json.loads(db.execute(_select(size, as_json=True), params).fetchone()[0])
        else:
            rows = db.execute(_select(size, as_json=False), params).fetchall()
        found = {key: (url, etag, last_modified) for key, url, etag, last_modified in rows}
        result: list[Validators | None] = []
        for key, url in zip(keys, urls, strict=True):
            row = found.get(key)
            # Another URL with the same 64-bit key is not ours; an empty row is no use.
            if row is None or row[0] != url or (row[1] is None and row[2] is None):
                result.append(None)
            else:
                result.append(Validators(row[1], row[2]))
        return result

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        # Never through a symbolic link (or anything but a file) planted at the index's name or
        # at SQLite's files beside it: the index is written where the user said, nowhere else.
        for path in (self.path, self.path + "-wal", self.path + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    raise sqlite3.DatabaseError(f"{path} is not a regular file")
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
                _switch_to_wal(db)  # persistent: once per index
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
        try:
            db.execute("SELECT json_group_array(json_array(1))").fetchone()
        except sqlite3.Error:
            self._json = False
        self._db = db
        return db


#: Told a look-up's answer, on the event loop: the validators, or None for a miss.
Answer = Callable[[Validators | None], None]


class BatchedCache:
    """:class:`Cache` off the event loop: look-ups are awaited (``lookup``) or answered through a
    callback (``ask``), stores are written behind.

    Every ``BatchedCache`` of one folder in a process shares one worker thread and its queue
    (:class:`_Worker`), so a run that follows another in the same process sees the entries the
    first one has not written yet.

    >>> import asyncio, tempfile
    >>> async def roundtrip():
    ...     cache = BatchedCache(Cache(tempfile.mkdtemp()))
    ...     await cache.store("http://127.0.0.1/a", Validators('"v1"', None))
    ...     return await cache.lookup("http://127.0.0.1/a")
    >>> asyncio.run(roundtrip())
    Validators(etag='"v1"', last_modified=None)
    """

    def __init__(self, cache: Cache) -> None:
        worker = _worker_for(cache.folder)
        self.lookup = worker.lookup
        self.recall = worker.recall
        self.ask = worker.ask
        self.store = worker.store
        self.keep = worker.keep
        self.prefetch = worker.prefetch


_workers: dict[str, _Worker] = {}
_workers_lock = threading.Lock()


def _forget_workers() -> None:
    """In a forked child: the parent's worker threads do not exist here; start afresh."""
    global _workers_lock
    _workers_lock = threading.Lock()
    _workers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _worker_for(folder: str) -> _Worker:
    key = os.path.realpath(folder)
    with _workers_lock:
        worker = _workers.get(key)
        if worker is None:
            if not _workers:
                atexit.register(_write_all_at_exit)
            worker = _workers[key] = _Worker(Cache(folder))
        return worker


def flush(timeout: float | None = None) -> bool:
    """Wait until every store queued in this process is written (or failed); False if
    ``timeout`` seconds passed first. Blocking: for tests and the end of the process."""
    with _workers_lock:
        workers = list(_workers.values())
    deadline = None if timeout is None else time.monotonic() + timeout
    return all(worker.flush(deadline) for worker in workers)


def _write_all_at_exit() -> None:
    flush(BUSY_TIMEOUT_S + 5)


class _Worker:
    """The worker thread of one cache folder and its queue.

    Look-ups asked for while the thread was busy go to it as one batch (one query) and come
    back with one wake-up of the loop. While the thread has the index open it also keeps a
    :class:`KeyFilter` of its keys (loaded when it opens the index, kept up to date with this
    process's stores): a URL the filter does not know is a miss at once, on the loop, without
    a trip to the thread. A URL it may hold is looked up before its attempt starts when the
    scheduler read it ahead (:meth:`prefetch`): a loop turn's worth per query, and the answer
    waits for :meth:`recall`. Entries that another process writes meanwhile are seen once the
    thread opens the index again (after :data:`IDLE_S` without work): until then those URLs
    are fetched unconditionally, as with any miss.

    Stores are written behind: :meth:`store` returns at once and the thread commits them
    together, in one transaction per :data:`STORE_BATCH` entries or per :data:`STORE_DELAY_S`
    (a commit per URL, or even per batch of look-ups, would be most of what ``--cache``
    costs). A look-up of a URL whose store is still waiting gets the stored value.

    A store that cannot be written is not the URL's failure (its record is right; only next
    time's request is unconditional): the first such failure is reported once on stderr as an
    ``afetch: warning:`` line, and so are stores dropped because :data:`STORE_BACKLOG` entries
    were already waiting (memory stays bounded when the index is slow, e.g. locked by another
    process for long).

    The thread starts on first use and ends, closing the index, after :data:`IDLE_S` without
    work; look-ups answered on the loop from what it holds (:meth:`recall`) count as work, so
    a warm run keeps its image. At interpreter exit the entries still waiting are written
    (``atexit``).
    """

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the thread waits for work
        self._written = threading.Condition(self._lock)  # flush() waits for the thread
        # Guarded by the lock: what the thread has yet to take.
        self._lookups: list[_Ask] = []
        #: What the index holds, while the thread has it open (set under the lock; stores
        #: are noted in it as they are queued).
        self._known: IndexImage | KeyFilter | None = None
        # Waiting stores as (etag, last_modified) tuples, not Validators objects: the garbage
        # collector stops tracking tuples of strings, so they are never promoted to the old
        # generation (thousands of objects there would make the full collections run).
        self._stores: dict[str, tuple[str | None, str | None] | None] = {}
        self._stores_since = 0.0  # when the oldest of them came
        self._unwritten = 0  # taken by the thread, not yet committed
        self._dropped = 0  # stores refused because the backlog was full
        self._running = False  # a worker thread exists
        self._idle = False  # ... and waits to be woken
        self._flushing = 0  # flush() calls waiting
        self._warned = False
        self._done: asyncio.Future[None] | None = None
        self._expiry: _Expiry | None = None
        self._recalled = 0  # look-ups answered on the loop (recall), a count for _take
        self._reading: list[str] = []  # read ahead this loop turn, to prefetch (loop only)
        self._prefetches: list[list[str]] = []  # batches the thread has yet to look up
        #: Prefetched answers (written by the thread, taken by recall), and their batches.
        self._prefetched: dict[str, Pair] = {}
        self._published: deque[list[str]] = deque()

    def lookup(self, url: str, deadline: float | None = None) -> asyncio.Future[Validators | None]:
        """``url``'s validators; a miss (None) if not answered within :data:`LOOKUP_WAIT_S`,
        or by ``deadline`` (loop time) if that comes first."""
        future: asyncio.Future[Validators | None] = asyncio.get_running_loop().create_future()
        found = self.recall(url)
        if found is UNKNOWN:
            self.ask(url, deadline, partial(_settle, future))
        else:
            future.set_result(found)
        return future

    def recall(self, url: str) -> Recalled:
        """What is known of ``url`` without asking the index, on the loop at once: its
        validators or None (a miss) while the thread holds the index in memory
        (:class:`IndexImage`); None or UNKNOWN with a :class:`KeyFilter`; else UNKNOWN. Ask
        the thread (:meth:`ask`) only about an UNKNOWN."""
        known = self._known
        if known is None:
            return UNKNOWN
        # In use: the thread keeps the index (and this image) open while look-ups are answered
        # here, though none reaches it (_take).
        self._recalled += 1
        found = known.recall(url)
        if found is UNKNOWN and self._prefetched:
            pair = self._prefetched.pop(url, UNKNOWN)
            if pair is not UNKNOWN:
                return None if pair is None else Validators(*pair)
        return found

    def prefetch(self, url: str) -> None:
        """``url`` was read ahead and will start soon: with a :class:`KeyFilter` that may know
        it, have the thread look it up now, with the others read this loop turn (one query),
        so that :meth:`recall` answers it on the loop instead of a trip per URL."""
        known = self._known
        if type(known) is not KeyFilter or known.recall(url) is not UNKNOWN:
            return
        reading = self._reading
        if not reading:
            asyncio.get_running_loop().call_soon(self._hand_over_reading)
        reading.append(url)

    def _hand_over_reading(self) -> None:
        reading, self._reading = self._reading, []
        with self._lock:
            self._prefetches.append(reading)
            self._start_or_wake()

    def ask(self, url: str, deadline: float | None, answer: Answer) -> None:
        """Look ``url`` up in the index without a future: ``answer`` is called once, on the loop
        and never from in here, with the validators, or None for a miss (also when the index
        cannot answer within :data:`LOOKUP_WAIT_S`, or by ``deadline``, loop time, if that
        comes first)."""
        loop = asyncio.get_running_loop()
        limit = loop.time() + LOOKUP_WAIT_S
        ask = _Ask(url, answer, loop, limit if deadline is None else min(deadline, limit))
        with self._lock:
            self._lookups.append(ask)
            self._start_or_wake()
        expiry = self._expiry
        if expiry is None or expiry.loop is not loop:
            expiry = self._expiry = _Expiry(loop)
        expiry.watch(ask)

    def store(self, url: str, validators: Validators | None) -> asyncio.Future[None]:
        """Queue ``url``'s entry for writing; returns a done future (nothing to wait for)."""
        loop = asyncio.get_running_loop()
        self.keep(url, validators)
        done = self._done
        if done is None or done.get_loop() is not loop:
            done = self._done = loop.create_future()
            done.set_result(None)
        return done  # awaiting a done future does not even suspend the task

    def keep(self, url: str, validators: Validators | None) -> None:
        """Queue ``url``'s entry for writing (None removes it); returns at once."""
        with self._lock:
            stores = self._stores
            if len(stores) + self._unwritten >= STORE_BACKLOG and url not in stores:
                self._dropped += 1  # the index is that slow: a cache may forget
                return
            if not stores:
                self._stores_since = time.monotonic()
            # A plain tuple: the garbage collector stops tracking it (see __init__).
            pair = None if validators is None else (validators[0], validators[1])
            stores[url] = pair
            if self._known is not None:
                self._known = self._known.note(url, pair)
            if url in self._prefetched:
                self._prefetched[url] = pair
            if len(stores) == 1 or len(stores) == STORE_BATCH:
                self._start_or_wake()  # to arm the delay, or to write a full batch now

    def flush(self, deadline: float | None) -> bool:
        """Block until the queued stores are written; False if ``deadline`` passed first."""
        with self._lock:
            self._flushing += 1
            try:
                while self._stores or self._unwritten:
                    self._start_or_wake()
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._written.wait(left)
                return True
            finally:
                self._flushing -= 1

    def _start_or_wake(self) -> None:
        """With the lock held: make sure the worker thread will see what was queued."""
        if not self._running:
            self._running = True
            threading.Thread(target=self._main, name="afetch-cache", daemon=True).start()
        elif self._idle:
            self._idle = False
            self._wake.notify()

    # -- the worker thread -----------------------------------------------------------------------

    def _main(self) -> None:
        cache = self._cache
        try:
            self._load_known()
            while True:
                with self._lock:
                    taken = self._take()
                if taken is None:
                    with self._lock:
                        self._known = None  # the index is closed: other processes may write
                        self._forget_prefetched()
                    cache.close()  # before saying so: a new thread never shares the index
                    with self._lock:
                        if not self._lookups and not self._stores and not self._prefetches:
                            self._running = False
                            return
                    self._load_known()
                    continue
                lookups, found, stores, prefetches = taken
                if stores:
                    self._write(stores)
                if lookups:
                    self._answer(lookups, found)
                if prefetches:
                    self._look_ahead(prefetches)
        except BaseException:
            with self._lock:
                self._known = None
                self._forget_prefetched()
                self._running = False
            raise
        finally:
            cache.close()

    def _load_known(self) -> None:
        """What the index holds now, with the stores still to write."""
        found = self._cache.known()
        with self._lock:
            if found is not None:
                for url, pair in self._stores.items():
                    found = found.note(url, pair)
            self._known = found

    def _take(
        self,
    ) -> (
        tuple[
            list[_Ask],
            dict[int, Validators | None],
            dict[str, tuple[str | None, str | None] | None],
            list[list[str]],
        ]
        | None
    ):
        """With the lock held: wait for work; the look-ups to make (with the answers already
        known from waiting stores), the stores due and the batches to prefetch; None after
        :data:`IDLE_S` without work."""
        linger_until = None
        while True:
            stores = self._stores
            now = time.monotonic()
            due = bool(stores) and (
                self._flushing > 0
                or len(stores) >= STORE_BATCH
                or now >= self._stores_since + STORE_DELAY_S
            )
            prefetches = self._prefetches
            if self._lookups or due or prefetches:
                if not due and not prefetches and len(self._lookups) < LOOKUP_BATCH:
                    if linger_until is None:
                        linger_until = now + LOOKUP_LINGER_S
                    if now < linger_until:
                        # Not idle: look-ups asked for meanwhile do not wake the thread.
                        self._wake.wait(linger_until - now)
                        continue
                lookups, self._lookups = self._lookups, []
                self._prefetches = []
                found = {
                    index: _validators(stores[ask.url])
                    for index, ask in enumerate(lookups)
                    if ask.url in stores
                }
                if not due:
                    return lookups, found, {}, prefetches
                self._stores = {}
                self._unwritten = len(stores)
                return lookups, found, stores, prefetches
            timeout = self._stores_since + STORE_DELAY_S - now if stores else IDLE_S
            recalled = self._recalled
            self._idle = True
            woken = self._wake.wait(timeout)
            self._idle = False
            # Look-ups the image answered count as work: dropping it would send the next ones
            # through this thread until it was read again (a whole index).
            if (
                not woken
                and not self._stores
                and not self._lookups
                and not self._prefetches
                and self._recalled == recalled
            ):
                return None

    def _write(self, stores: dict[str, tuple[str | None, str | None] | None]) -> None:
        try:
            self._cache.store_many(stores.items())
        except Exception as exc:  # a cache: the run goes on without these entries
            self._warn(exc)
        with self._lock:
            self._unwritten = 0
            dropped, self._dropped = self._dropped, 0
            self._written.notify_all()
        if dropped:
            self._warn(
                CacheError(
                    f"the cache index {self._cache.path} is too slow: {dropped} entries dropped"
                )
            )

    def _answer(self, lookups: list[_Ask], found: dict[int, Validators | None]) -> None:
        ask = [(index, entry.url) for index, entry in enumerate(lookups) if index not in found]
        try:
            answers = self._cache.lookup_many([url for _, url in ask]) if ask else []
        except Exception as exc:  # a cache: never fail (or leave waiting) a fetch for it
            self._warn(exc)
        else:
            found.update(zip((index for index, _ in ask), answers, strict=True))
        # Nearly always one loop (threads with loops of their own could share a folder).
        for loop in {entry.loop for entry in lookups}:
            _call_soon(loop, _deliver, loop, lookups, found)

    def _look_ahead(self, batches: list[list[str]]) -> None:
        """Look up the URLs read ahead and publish the answers for :meth:`recall`."""
        urls = [url for batch in batches for url in batch]
        try:
            answers = self._cache.lookup_many(urls)
        except Exception as exc:  # as a failed look-up: those URLs ask, or are misses
            self._warn(exc)
            return
        with self._lock:
            prefetched, stores, published = self._prefetched, self._stores, self._published
            for url, validators in zip(urls, answers, strict=True):
                if url in stores:  # written since: the newer entry
                    prefetched[url] = stores[url]
                else:
                    prefetched[url] = None if validators is None else (validators[0], validators[1])
            published.append(urls)
            while len(published) > PREFETCH_KEEP:
                for url in published.popleft():
                    prefetched.pop(url, None)

    def _forget_prefetched(self) -> None:
        """With the lock held: the index is closed; its answers may go stale."""
        self._prefetched.clear()
        self._published.clear()

    def _warn(self, exc: Exception) -> None:
        if self._warned:
            return
        self._warned = True
        with contextlib.suppress(Exception):
            print(
                f"afetch: warning: {exc}; the URLs concerned will be fetched unconditionally",
                file=sys.stderr,
                flush=True,
            )


class _Ask:
    """One look-up: its URL, whom to tell (None once told), on which loop, and by when."""

    __slots__ = ("answer", "deadline", "loop", "url")

    def __init__(
        self, url: str, answer: Answer, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> None:
        self.url = url
        self.answer: Answer | None = answer
        self.loop = loop
        self.deadline = deadline


def _tell(ask: _Ask, found: Validators | None) -> None:
    """Answer ``ask`` unless it was answered already (expired, or answered by the thread)."""
    answer = ask.answer
    if answer is not None:
        ask.answer = None
        try:
            answer(found)
        except Exception as exc:  # its fetch's trouble: the other answers are still due
            ask.loop.call_exception_handler(
                {"message": "a cache look-up's callback failed", "exception": exc}
            )


def _settle(future: asyncio.Future[Validators | None], found: Validators | None) -> None:
    if not future.done():  # its fetch may have been cancelled meanwhile
        future.set_result(found)


class _Expiry:
    """Look-ups still unanswered at their deadline become misses, on the loop: an index that
    is locked or hangs costs at most :data:`LOOKUP_WAIT_S` per URL, and never delays an
    attempt past its own deadline (the fetcher lets the engine keep that deadline). One timer
    at a time, not one per look-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: deque[_Ask] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, ask: _Ask) -> None:
        pending = self._pending
        # Answered look-ups leave at once: kept for a second, thousands of them would outlive
        # two garbage collections each and make the full collections run.
        while pending and pending[0].answer is None:
            pending.popleft()
        pending.append(ask)
        if self._timer is None:
            self._timer = self.loop.call_at(ask.deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        pending, now = self._pending, self.loop.time()
        # Deadlines come nearly in order (the same --timeout from each attempt's start).
        while pending and (pending[0].answer is None or pending[0].deadline <= now):
            _tell(pending.popleft(), None)
        if pending:
            self._timer = self.loop.call_at(max(pending[0].deadline, now), self._expire)


def _validators(pair: tuple[str | None, str | None] | None) -> Validators | None:
    return None if pair is None else Validators(*pair)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


def _deliver(
    loop: asyncio.AbstractEventLoop, lookups: list[_Ask], found: dict[int, Validators | None]
) -> None:
    get = found.get
    for index, ask in enumerate(lookups):
        if ask.loop is loop:  # not another loop's
            _tell(ask, get(index))  # not found: the index failed, a miss
