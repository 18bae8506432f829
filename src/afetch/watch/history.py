"""The ``--history`` store: each URL's recent outcomes, across runs, in one SQLite file.

One row per URL (afetch.watch.change.Row), keyed as ``--state`` journals requests: a 16-byte
BLAKE2b digest of the URL, or of a request object's method, URL and body
(:func:`afetch._spec.request_key`). A row keeps the URL's last :data:`~change.KEEP_OUTCOMES`
outcomes as bits, the status, digests of the final URL and body, and the current streak: about
85 bytes on disk (docs/performance.md: a million URLs in well under 200 MiB).

Bounded: a URL that :data:`FORGET_AFTER` finished runs in a row did not see is deleted (its
next appearance is ``new``). Runs are numbered in the store; a run resumed with ``--resume``
(its ``--state`` journal unfinished) keeps its number, and a URL already judged in this run
(done before the interruption, or a repeated input line) is not counted again: its record gets
the row as this run left it.

One writer: the file is held in SQLite's exclusive locking mode from open to close, so a second
run on it is a usage error (``--shard``: one store per shard, the shard is noted in it and
checked). WAL journal, ``synchronous=NORMAL``: a crash loses at most the last transaction,
never the store. The writer thread judges a batch (one SELECT) before it writes the batch; the
new rows wait in memory and are written, in one statement, and committed about once a second
(COMMIT_S) and at the end of the run: a record that then fails to be written is refetched by
``--resume`` and given the row's judgement, not judged twice; after a crash, the last second's
URLs keep their earlier row (their next run continues from it).
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Sequence

from afetch._record import Record, set_watch
from afetch.input.journal import url_keys
from afetch.watch.change import CHANGES, Row, next_row
from afetch.watch.policy import WatchError

#: A URL unseen by this many finished runs in a row is forgotten.
FORGET_AFTER = 30
_SCHEMA = 1
#: Rows are committed every COMMIT_S seconds or COMMIT_ROWS rows, whichever comes first, not
#: per batch: keys are hashes, so each commit rewrites pages all over the file, and a commit
#: per batch of 256 records wrote several KB per URL. A crash loses at most that last second.
COMMIT_S = 1.0
COMMIT_ROWS = 16384
#: A row's values but its run, packed into one BLOB: (ok, outcomes, status or -1, final, body,
#: change, streak), then since as text. One column instead of nine: binding and reading
#: SQLite values one by one was most of the store's cost per URL.
_PACKED = struct.Struct("<BIh8s8sBI24s")
_NO_DIGEST = bytes(8)
_KEY = 16  # bytes of a key (afetch.input.journal.url_key)
#: Rows are keyed by a hash, so a run's reads and writes land all over the file: a page cache
#: that holds a large store's hot part, reads through mmap, and checkpoints (the fsyncs) every
#: few thousand pages rather than every thousand.
_TUNING = ("cache_size=-32768", "mmap_size=268435456", "wal_autocheckpoint=8000")
#: A batch's keys go in as one BLOB (16 bytes each, one after the other), cut up by SQLite (a
#: recursive CTE): binding each key as a parameter cost more than the query (the sqlite3 module
#: looks for an adapter for every bytes value, failing twice, before it binds it).
_KEYS_IN = (
    "WITH RECURSIVE k(i) AS (VALUES(1) UNION ALL SELECT i + {size} FROM k"
    " WHERE i + {size} < length(?1))"
)
#: A batch's rows out in one value (key, run and row, in hex, one after the other): SQLite
#: returns it in one step, so the GIL is released and taken back once per query, not once per
#: row (each time a switch to the busy event loop and back; afetch.cache.index does the same).
_SELECT = (
    _KEYS_IN.format(size=_KEY)
    + " SELECT group_concat(key || iif(run = ?2, 'Y', 'N') || row, '') FROM url"
    f" WHERE key IN (SELECT substr(?1, i, {_KEY}) FROM k)"
)
#: A row found, as the SELECT gives it (its bytes as they are: see History._rows): key, Y if
#: this run judged it already (else N), the packed row.
_FOUND = struct.Struct(f"<{_KEY}sc" + _PACKED.format[1:])
#: A row as the INSERT takes it, in one BLOB for the batch: key, ``fails`` in ASCII decimal
#: (SQLite casts it back), the packed row. One statement and one value per batch.
_FAILS = b"%010d"
_FAILS_SIZE = 10
_WRITTEN = _KEY + _FAILS_SIZE + _PACKED.size
_UPSERT = (
    _KEYS_IN.format(size=_WRITTEN)
    + f" INSERT OR REPLACE INTO url SELECT substr(?1, i, {_KEY}), ?2,"
    f" CAST(substr(?1, i + {_KEY}, {_FAILS_SIZE}) AS INTEGER),"
    f" substr(?1, i + {_KEY + _FAILS_SIZE}, {_PACKED.size}) FROM k"
)


class HistoryError(WatchError):
    """The store cannot be used; the message is one line for stderr."""


def _pack(row: Row) -> bytes:
    _, ok, outcomes, status, final, body, change, streak, since = row
    status = -1 if status is None else status
    # since is a started_at: 24 ASCII characters (afetch._timestamps).
    text = since.encode("utf-8", "surrogatepass")[:24]
    return _PACKED.pack(
        ok, outcomes, status, final or _NO_DIGEST, body or _NO_DIGEST, change, streak, text
    )


def _found(data: bytes, run: int) -> dict[bytes, Row]:
    """The rows in ``data`` (the SELECT's value), by key, in one loop (no call per row); their
    run is ``run`` if it judged them already, else 0 (an earlier one: which does not matter).

    >>> row = (3, 1, 0b1011, None, None, b"12345678", 1, 2, "2026-12-07T04:00:00.000Z")
    >>> _found(b"k" * 16 + b"Y" + _pack(row), 3) == {b"k" * 16: row}
    True
    """
    none = _NO_DIGEST
    return {
        key: (
            run if this == b"Y" else 0,
            ok,
            outcomes,
            None if status < 0 else status,
            None if final == none else final,
            None if body == none else body,
            change,
            streak,
            since.rstrip(b"\0").decode("utf-8", "surrogatepass"),
        )
        for key, this, ok, outcomes, status, final, body, change, streak, since in (
            _FOUND.iter_unpack(data)
        )
    }


def _upsert(db: sqlite3.Connection, run: int, rows: list[tuple[bytes, int, bytes]]) -> None:
    """Write ``rows`` (key, fails, packed row) of ``run`` in one statement, in key order, so
    that each B-tree page is visited once."""
    rows.sort()
    blob = b"".join([key + _FAILS % fails + packed for key, fails, packed in rows])
    db.execute(_UPSERT, (blob, run))


def _digest(text: str) -> bytes:
    import hashlib

    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


class History:
    """The store at ``path``, locked and ready for this run; blocking (call from a thread)."""

    def __init__(self, path: str, *, resume: bool, shard: str = "") -> None:
        try:
            self._db = sqlite3.connect(
                path, timeout=0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open --history {path}: {exc}") from None
        try:
            self.run = self._begin(path, resume=resume, shard=shard)
        except BaseException:
            self._db.close()
            raise
        self._path = path
        #: Rows this run judged, not yet written: written and committed together about once a
        #: second (COMMIT_S), one statement for all, not one per batch (each statement hands
        #: the GIL to the event loop and back).
        self._unwritten: dict[bytes, Row] = {}
        self._committed = time.monotonic()

    def _begin(self, path: str, *, resume: bool, shard: str) -> int:
        db = self._db
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for pragma in _TUNING:
                db.execute(f"PRAGMA {pragma}")
            db.execute("BEGIN IMMEDIATE")  # takes the lock, held until close
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise HistoryError(
                    f"{path} is in use by another afetch run (--history takes a lock until "
                    "that run ends)"
                ) from None
            raise HistoryError(f"cannot use --history {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"cannot use --history {path}: {exc}") from None
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID")
        db.execute(
            # run: the last run that judged the URL; fails: its streak when not ok, else 0 (what
            # the exit policy counts); row: the rest, packed (_pack).
            "CREATE TABLE IF NOT EXISTS url (key BLOB PRIMARY KEY, run INTEGER, fails INTEGER,"
            " row BLOB) WITHOUT ROWID"
        )
        meta = dict(db.execute("SELECT name, value FROM meta"))
        if meta.get("schema", _SCHEMA) != _SCHEMA:
            raise HistoryError(f"{path} was written by another afetch version (schema)")
        if "shard" in meta and meta["shard"] != shard:
            was = meta["shard"] or "no --shard"
            raise HistoryError(
                f"{path} holds the history of {was}; use one --history file per shard"
            )
        number = int(meta.get("run", 0))
        if not (resume and number and not meta.get("finished", 1)):
            number += 1
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("schema", _SCHEMA), ("shard", shard), ("run", number), ("finished", 0)],
        )
        db.execute("COMMIT")
        return number

    def judge(self, records: Sequence[Record], oks: Sequence[bool]) -> None:
        """Give each record, whose verdict is in ``oks``, its (change, streak, since), in place
        (see set_watch); their rows are updated (committed about once a second). A URL this
        run already judged keeps that judgement."""
        keys = url_keys([record.key or record.url for record in records])
        unwritten = self._unwritten
        rows = self._rows([key for key in keys if key not in unwritten])
        run = self.run
        for record, key, ok in zip(records, keys, oks, strict=True):
            row = unwritten.get(key)
            if row is None:
                row = rows.get(key)
                if row is None or row[0] != run:
                    url, final, sha = record.url, record.final_url, record.sha256
                    row = unwritten[key] = next_row(
                        row,
                        run,
                        ok,
                        record.status,
                        # The final URL is most often the URL itself: no digest to make then.
                        None if final is None or final == url else _digest(final),
                        None if sha is None else bytes.fromhex(sha[:16]),
                        record.started_at,
                    )
            set_watch(record, (CHANGES[row[6]], row[7], row[8]))
        now = time.monotonic()
        if len(unwritten) >= COMMIT_ROWS or now - self._committed >= COMMIT_S:
            self._commit(now)

    def _rows(self, keys: list[bytes]) -> dict[bytes, Row]:
        if not keys:
            return {}
        db = self._db
        # The value is binary: its bytes as they are (no hex, nor a UTF-8 decoding).
        db.text_factory = bytes
        try:
            data = db.execute(_SELECT, (b"".join(keys), self.run)).fetchone()[0]
        finally:
            db.text_factory = str
        return _found(data, self.run) if data else {}

    def _commit(self, now: float) -> None:
        """Write the rows judged since the last commit, in one statement, and commit."""
        unwritten, self._unwritten = self._unwritten, {}
        self._committed = now
        db = self._db
        try:
            if unwritten:
                if not db.in_transaction:
                    db.execute("BEGIN")
                _upsert(
                    db,
                    self.run,
                    [(key, 0 if row[1] else row[7], _pack(row)) for key, row in unwritten.items()],
                )
            if db.in_transaction:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise HistoryError(f"cannot write --history {self._path}: {exc}") from None

    def failing(self, *, at_least: int, exactly: bool) -> int:
        """URLs this run judged not ok with a streak of ``at_least`` (or more, unless
        ``exactly``): what the exit policy counts, each URL once, a resumed run's whole."""
        self._commit(time.monotonic())
        op = "=" if exactly else ">="
        query = f"SELECT count(*) FROM url WHERE run = ? AND fails {op} ?"
        return int(self._db.execute(query, (self.run, at_least)).fetchone()[0])

    def finish(self) -> None:
        """The run read all its input and wrote every record: mark it finished (a ``--resume``
        starts the next run) and forget the URLs it was the FORGET_AFTER-th run not to see."""
        self._commit(time.monotonic())
        db = self._db
        db.execute("BEGIN")
        db.execute("DELETE FROM url WHERE run <= ?", (self.run - FORGET_AFTER,))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', 1)")
        db.execute("COMMIT")

    def close(self) -> None:
        """Commit what is pending and release the store."""
        try:
            self._commit(time.monotonic())
        finally:
            self._db.close()
