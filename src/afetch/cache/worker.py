"""The worker thread of one cache folder, and the loop-facing API of the cache
(:class:`BatchedCache`): look-ups and stores are queued on the loop and done in the thread, in
batches, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import deque
from functools import partial

from afetch._clock import Clock
from afetch.cache.answers import Answer, Expiry, Pending, call_soon, deliver, settle
from afetch.cache.image import KeyFilter, Memory
from afetch.cache.index import CacheError, Index
from afetch.cache.validators import UNKNOWN, Known, Pair, Validators, from_pair

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
#: (figures: docs/performance.md, History).
STORE_DELAY_S = 2.0
#: Unwritten stores beyond which a store is dropped (with a warning).
STORE_BACKLOG = 20_000
#: With a :class:`KeyFilter`, the URLs the scheduler reads ahead are looked up before they
#: start, a loop turn's worth at a time (:meth:`BatchedCache.prefetch`); the answers of this many
#: such batches are kept for :meth:`BatchedCache.lookup_now`, older ones are dropped (their
#: URLs have started by then, or never will).
PREFETCH_KEEP = 8


class BatchedCache:
    """The cache of one folder off the event loop: its worker thread and queue. One per folder
    in a process (:func:`afetch.cache.cache_for`), so that a run that follows another in the
    same process sees the entries the first one has not written yet.

    Look-ups asked for while the thread was busy go to it as one batch (one query) and come
    back with one wake-up of the loop. While the thread has the index open it also keeps a
    :class:`KeyFilter` of its keys (loaded when it opens the index, kept up to date with this
    process's stores): a URL the filter does not know is a miss at once, on the loop, without
    a trip to the thread. A URL it may hold is looked up before its attempt starts when the
    scheduler read it ahead (:meth:`prefetch`): a loop turn's worth per query, and the answer
    waits for :meth:`lookup_now`. Entries that another process writes meanwhile are seen once the
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
    work; look-ups answered on the loop from what it holds (:meth:`lookup_now`) count as work,
    so a warm run keeps its image. At interpreter exit the entries still waiting are written
    (``atexit``).

    >>> import asyncio, tempfile
    >>> async def roundtrip():
    ...     cache = BatchedCache(Index(tempfile.mkdtemp()))
    ...     cache.store("http://127.0.0.1/a", Validators('"v1"', None))
    ...     return await cache.lookup("http://127.0.0.1/a")
    >>> asyncio.run(roundtrip())
    Validators(etag='"v1"', last_modified=None)
    """

    def __init__(self, index: Index) -> None:
        self._index = index
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the thread waits for work
        self._written = threading.Condition(self._lock)  # flush() waits for the thread
        # Guarded by the lock: what the thread has yet to take.
        self._lookups: list[Pending] = []
        #: What the index holds, while the thread has it open (set under the lock; stores
        #: are noted in it as they are queued).
        self._memory: Memory | None = None
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
        self._expiry: Expiry | None = None
        self._answered_now = 0  # look-ups answered by lookup_now, a count for _take
        self._reading: list[str] = []  # read ahead this loop turn, to prefetch (loop only)
        self._prefetches: list[list[str]] = []  # batches the thread has yet to look up
        #: Prefetched answers (written by the thread, taken by lookup_now), and their batches.
        self._prefetched: dict[str, Pair] = {}
        self._published: deque[list[str]] = deque()

    def lookup(
        self, url: str, deadline: float | None = None, *, clock: Clock | None = None
    ) -> asyncio.Future[Validators | None]:
        """``url``'s validators; a miss (None) if not answered within :data:`LOOKUP_WAIT_S`,
        or by ``deadline`` (on ``clock``, the loop's by default) if that comes first."""
        future: asyncio.Future[Validators | None] = asyncio.get_running_loop().create_future()
        found = self.lookup_now(url)
        if found is UNKNOWN:
            self.lookup_then(url, deadline, partial(settle, future), clock=clock)
        else:
            future.set_result(found)
        return future

    def lookup_now(self, url: str) -> Known:
        """What is known of ``url`` without asking the index, on the loop at once: its
        validators or None (a miss) while the thread holds the index in memory
        (:class:`IndexImage`); None or UNKNOWN with a :class:`KeyFilter`; else UNKNOWN. Ask
        the thread (:meth:`lookup_then`) only about an UNKNOWN."""
        memory = self._memory
        if memory is None:
            return UNKNOWN
        # In use: the thread keeps the index (and this image) open while look-ups are answered
        # here, though none reaches it (_take).
        self._answered_now += 1
        found = memory.lookup(url)
        if found is UNKNOWN and self._prefetched:
            pair = self._prefetched.pop(url, UNKNOWN)
            if pair is not UNKNOWN:
                return None if pair is None else Validators(*pair)
        return found

    def prefetch(self, url: str) -> None:
        """``url`` was read ahead and will start soon: with a :class:`KeyFilter` that may know
        it, have the thread look it up now, with the others read this loop turn (one query),
        so that :meth:`lookup_now` answers it on the loop instead of a trip per URL."""
        memory = self._memory
        if type(memory) is not KeyFilter or memory.lookup(url) is not UNKNOWN:
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

    def lookup_then(
        self, url: str, deadline: float | None, answer: Answer, *, clock: Clock | None = None
    ) -> None:
        """Look ``url`` up in the index without a future: ``answer`` is called once, on the loop
        and never from in here, with the validators, or None for a miss (also when the index
        cannot answer within :data:`LOOKUP_WAIT_S`, or by ``deadline``, if that comes first;
        both on ``clock``, the loop's by default)."""
        loop = asyncio.get_running_loop()
        clock = loop if clock is None else clock
        limit = clock.time() + LOOKUP_WAIT_S
        pending = Pending(url, answer, loop, limit if deadline is None else min(deadline, limit))
        with self._lock:
            self._lookups.append(pending)
            self._start_or_wake()
        expiry = self._expiry
        if expiry is None or expiry.loop is not loop or expiry.clock is not clock:
            expiry = self._expiry = Expiry(loop, clock)
        expiry.watch(pending)

    def store(self, url: str, validators: Validators | None) -> None:
        """Queue ``url``'s entry for writing (None removes it); returns at once: the records
        never wait for the index."""
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
            if self._memory is not None:
                self._memory = self._memory.store(url, pair)
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
        index = self._index
        try:
            self._load_memory()
            while True:
                with self._lock:
                    taken = self._take()
                if taken is None:
                    with self._lock:
                        self._memory = None  # the index is closed: other processes may write
                        self._forget_prefetched()
                    index.close()  # before saying so: a new thread never shares the index
                    with self._lock:
                        if not self._lookups and not self._stores and not self._prefetches:
                            self._running = False
                            return
                    self._load_memory()
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
                self._memory = None
                self._forget_prefetched()
                self._running = False
            raise
        finally:
            index.close()

    def _load_memory(self) -> None:
        """What the index holds now, with the stores still to write."""
        found = self._index.load_memory()
        with self._lock:
            if found is not None:
                for url, pair in self._stores.items():
                    found = found.store(url, pair)
            self._memory = found

    def _take(
        self,
    ) -> (
        tuple[
            list[Pending],
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
                    index: from_pair(stores[ask.url])
                    for index, ask in enumerate(lookups)
                    if ask.url in stores
                }
                if not due:
                    return lookups, found, {}, prefetches
                self._stores = {}
                self._unwritten = len(stores)
                return lookups, found, stores, prefetches
            timeout = self._stores_since + STORE_DELAY_S - now if stores else IDLE_S
            recalled = self._answered_now
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
                and self._answered_now == recalled
            ):
                return None

    def _write(self, stores: dict[str, tuple[str | None, str | None] | None]) -> None:
        try:
            self._index.store_many(stores.items())
        except Exception as exc:  # a cache: the run goes on without these entries
            self._warn(exc)
        with self._lock:
            self._unwritten = 0
            dropped, self._dropped = self._dropped, 0
            self._written.notify_all()
        if dropped:
            self._warn(
                CacheError(
                    f"the cache index {self._index.path} is too slow: {dropped} entries dropped"
                )
            )

    def _answer(self, lookups: list[Pending], found: dict[int, Validators | None]) -> None:
        ask = [(index, entry.url) for index, entry in enumerate(lookups) if index not in found]
        try:
            answers = self._index.lookup_many([url for _, url in ask]) if ask else []
        except Exception as exc:  # a cache: never fail (or leave waiting) a fetch for it
            self._warn(exc)
        else:
            found.update(zip((index for index, _ in ask), answers, strict=True))
        # Nearly always one loop (threads with loops of their own could share a folder).
        for loop in {entry.loop for entry in lookups}:
            call_soon(loop, deliver, loop, lookups, found)

    def _look_ahead(self, batches: list[list[str]]) -> None:
        """Look up the URLs read ahead and publish the answers for :meth:`lookup_now`."""
        urls = [url for batch in batches for url in batch]
        try:
            answers = self._index.lookup_many(urls)
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
