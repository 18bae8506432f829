"""The SQLite index of one cache folder, ``DIR/index.sqlite``: blocking, safe for concurrent
processes (see the package's docstring). :class:`Index` is called from the worker thread only
(and from tests and benchmarks), never on the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import chain
from typing import Any

from afetch.cache.image import Memory, memory_of
from afetch.cache.validators import Validators

#: The index file in the cache folder.
INDEX = "index.sqlite"
#: How long a store waits for another process's write transaction to end.
BUSY_TIMEOUT_S = 30.0
#: The index's format; an index with a higher number is from a newer afetch and is not touched.
_FORMAT = 1
#: Look-ups per query (a parameter per key; SQLite allows 999 in old versions).
_CHUNK = 512
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS validators ("
    "key INTEGER PRIMARY KEY, url TEXT NOT NULL, etag TEXT, last_modified TEXT)"
)
_UPSERT = "INSERT OR REPLACE INTO validators (key, url, etag, last_modified) VALUES "
#: Rows per INSERT statement, at most (4 parameters a row; old SQLite allows 999 parameters).
_UPSERT_ROWS = 128
_DELETE = "DELETE FROM validators WHERE key = ? AND url = ?"
#: The entries of the index, a page at a time in key order, for what is held in memory:
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
    per batch, not once per row (a third less CPU: docs/performance.md)."""
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


class Index:
    """Validators per URL in ``folder``'s index; blocking, safe for concurrent processes.

    Its connection to the index is opened on first use, closed by :meth:`close`, and used by
    one thread at a time (a lock; the worker thread is its only caller in a run anyway).

    >>> import tempfile
    >>> index = Index(tempfile.mkdtemp())
    >>> index.store("http://127.0.0.1/a", Validators('"v1"', None))
    >>> index.lookup("http://127.0.0.1/a")
    Validators(etag='"v1"', last_modified=None)
    >>> index.close()
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

    def load_memory(self) -> Memory | None:
        """What the index holds now, for look-ups that need not ask it (see
        :func:`afetch.cache.image.memory_of`); None for a larger index or one that cannot be
        read."""
        with self._lock:
            try:
                db = self._open()
                count = db.execute("SELECT count(*) FROM validators").fetchone()[0]
                return memory_of(count, partial(self._entries, db))
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
