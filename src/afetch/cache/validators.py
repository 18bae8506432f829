"""What the cache holds per URL (:class:`Validators`), and what a look-up can answer."""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


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
    """A look-up's answer from memory (``lookup_now``) when only the index can tell."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN
#: What is known of a URL without asking the index: its validators, None (certainly not
#: cached) or UNKNOWN.
Known = Validators | None | Unknown
#: An entry as the worker holds it: a plain (etag, last_modified) tuple, which the garbage
#: collector stops tracking (see BatchedCache.__init__); None: removed.
Pair = tuple[str | None, str | None] | None


def from_pair(pair: Pair) -> Validators | None:
    return None if pair is None else Validators(*pair)
