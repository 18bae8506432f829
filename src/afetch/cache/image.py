"""The index in memory, so that look-ups are answered on the event loop without a trip to the
worker thread: all of a small index (:class:`IndexImage`), or which URLs a larger one may hold
(:class:`KeyFilter`, a Bloom filter). Both answer ``lookup(url)`` and take ``store(url, pair)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from afetch.cache.validators import UNKNOWN, Known, Pair, Validators

#: An index of at most this many entries is read whole into memory when the worker opens it
#: (an :class:`IndexImage`, about 500 bytes an entry): every look-up is then answered on
#: the loop at once, with no trip to the worker thread.
IMAGE_MAX = 20_000
#: A larger index, up to this many entries, gets a :class:`KeyFilter` instead (a miss is known
#: at once, a hit asks the thread); beyond it every look-up asks the index. Building either
#: costs about a microsecond per entry in the worker thread.
FILTER_MAX = 1_000_000


class KeyFilter:
    """Which URLs an index may hold: a Bloom filter over the URLs' Python hashes (two bits a
    URL, at least 32 bits of room per URL: about 0.4% false positives), so that the look-up of
    a URL that is certainly not cached needs no trip to the worker thread. A false positive
    costs only that trip; there are no false negatives for the URLs it was built from and
    given since. Python's hash of a string is computed once per string object and kept in it:
    checking a URL costs no hashing of its own (the index's 64-bit BLAKE2b keys would).

    >>> known = KeyFilter(1)
    >>> known.add("http://127.0.0.1/a")
    >>> known.lookup("http://127.0.0.1/a"), known.lookup("http://127.0.0.1/b")
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
        """Set ``url``'s bits (the filter's own primitive; :meth:`store` for an entry)."""
        bits, mask, key = self._bits, self._mask, hash(url)
        low, high = key & mask, (key >> 32) & mask
        bits[low >> 3] |= 1 << (low & 7)
        bits[high >> 3] |= 1 << (high & 7)

    def store(self, url: str, pair: Pair) -> KeyFilter:
        """``url``'s entry is now ``pair`` (a removed one may stay: no false negatives)."""
        if pair is not None:
            self.add(url)
        return self

    def lookup(self, url: str) -> Known:
        bits, mask, key = self._bits, self._mask, hash(url)
        low, high = key & mask, (key >> 32) & mask
        if bits[low >> 3] & (1 << (low & 7)) and bits[high >> 3] & (1 << (high & 7)):
            return UNKNOWN
        return None


class IndexImage:
    """A small index whole in memory (see :data:`IMAGE_MAX`): every look-up answered at once.

    >>> image = IndexImage({"http://127.0.0.1/a": ('"v1"', None)})
    >>> image.lookup("http://127.0.0.1/a"), image.lookup("http://127.0.0.1/b")
    (Validators(etag='"v1"', last_modified=None), None)
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: dict[str, tuple[str | None, str | None]]) -> None:
        self._pairs = pairs

    def store(self, url: str, pair: Pair) -> IndexImage | KeyFilter:
        """``url``'s entry is now ``pair`` (None: removed); what to hold from now on: this
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

    def lookup(self, url: str) -> Known:
        pair = self._pairs.get(url)
        return None if pair is None else Validators(*pair)


#: What the worker holds of the index in memory while it has the index open.
Memory = IndexImage | KeyFilter


def memory_of(count: int, entries: Callable[[], Iterable[Sequence[Any]]]) -> Memory | None:
    """The memory to hold of an index of ``count`` entries, whose (url, etag, last_modified)
    rows ``entries()`` reads: all of it up to :data:`IMAGE_MAX` entries, its URLs up to
    :data:`FILTER_MAX`; None for a larger index (every look-up asks it)."""
    if count > FILTER_MAX:
        return None
    if count <= IMAGE_MAX:
        return IndexImage(
            {
                url: (etag, last_modified)
                for url, etag, last_modified in entries()
                if etag is not None or last_modified is not None  # no use
            }
        )
    known = KeyFilter(count)
    add = known.add
    for url, _, _ in entries():
        add(url)
    return known
