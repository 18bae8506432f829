"""``--cache DIR``: ETag and Last-Modified per URL, for conditional refetches.

One SQLite index per cache folder, ``DIR/index.sqlite`` (with SQLite's ``-wal`` and ``-shm``
files beside it, nothing else): a row per URL, keyed by 64 bits of BLAKE2b over the URL as
given, holding the URL itself (a row for another URL with the same key is not ours: a miss) and
its validators (why an index and not a file per URL: docs/performance.md).

Several processes (shards, overlapping cron runs) may share a folder: the index is in WAL
mode, so readers never wait for a writer, and writers take turns (``BEGIN IMMEDIATE``, waiting
up to ``BUSY_TIMEOUT_S`` for the lock; a batch's transaction holds it for milliseconds).
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

The modules, each one job: ``validators`` (what is held per URL), ``index`` (the SQLite index,
blocking), ``image`` (the index in memory: whole, or a Bloom filter of its URLs), ``answers``
(look-ups waiting on the loop, and their deadlines), ``worker`` (the worker thread and the
loop-facing :class:`BatchedCache`), ``folders`` (one cache per folder in a process).

The vocabulary, the same at every layer:

- **lookup**: read a URL's entry (its :class:`Validators`, or None for a miss). ``lookup`` and
  ``lookup_many`` on the :class:`Index` (blocking); ``lookup`` on the in-memory image or filter
  (at once; UNKNOWN when only the index can tell); on :class:`BatchedCache`, ``lookup`` (a
  future), ``lookup_now`` (from memory, at once, maybe UNKNOWN) and ``lookup_then`` (an answer
  callback, on the loop).
- **store**: write a URL's entry (None removes it). ``store`` and ``store_many`` on the
  :class:`Index` (blocking); ``store`` on the image or filter (returns what to hold next); on
  :class:`BatchedCache`, ``store`` queues it and returns at once (written behind).
- **prefetch**: a URL read ahead will be looked up soon: look it up now, in a batch.
- **flush**: wait until the queued stores are written.
- **load_memory**: read the index whole into memory (an image, or a filter of its URLs).
"""

from __future__ import annotations

# The tunable limits (IMAGE_MAX, IDLE_S, ...) are not re-exported: each is read where it is
# defined, so that is where a test sets it.
from afetch.cache.folders import cache_for, flush
from afetch.cache.image import IndexImage, KeyFilter
from afetch.cache.index import INDEX, CacheError, Index
from afetch.cache.validators import UNKNOWN, Known, Unknown, Validators
from afetch.cache.worker import BatchedCache

__all__ = [
    "INDEX",
    "UNKNOWN",
    "BatchedCache",
    "CacheError",
    "Index",
    "IndexImage",
    "KeyFilter",
    "Known",
    "Unknown",
    "Validators",
    "cache_for",
    "flush",
]
