"""``--include soft404``: is a 200 the page its host serves for a path that cannot exist?

Per host (scheme, host, port) one **canary**: a GET of ``/<16 random hex digits>`` on the same
origin, with the run's headers, following redirects as the run does, its body kept up to
``--body-limit``. It starts when the first record of that host has a 200 to compare, runs once
per run whatever happens to it, and produces no record: the attempts of that host that have a
200 await it (:class:`afetch.attempt.canary.Canaries`). The attempt that started it holds its
host's slot while it waits, so the canary runs inside the host's concurrency limit, never beside
it; the scheduler's pacing counts it as one more request of its host and may have it wait its
turn (:attr:`afetch.attempt.canary.Canaries.pace`).

A 200 is a **soft 404** when its :class:`Sign` matches the canary's (:func:`verdict`): the canary
answered 200 too, the kept bodies' sizes are in the same or adjacent power-of-two class, their
titles are equal, and the MinHash (bottom-64) sketches of their visible text's word 3-shingles
estimate a Jaccard similarity of at least :data:`SIMILAR`. Words of each request's own path are
dropped first: a catch-all page that echoes the path asked for still matches. A soft 404 that
carries a parking service's mark (:data:`PARKING_MARKERS`) is **parked**.

Cost: each step is linear in the kept body (split on ``<``, a regex over text, one hash per
shingle, ``heapq.nsmallest``); a body over :data:`SIGN_ON_LOOP_MAX` is signed in a worker
thread, as the body keys are over theirs. A run without ``soft404`` never imports this module.

This module is the page's sign and the verdict, below the attempt machine that asks for them;
the canary, an attempt of its own, is :mod:`afetch.attempt.canary`, above it.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from afetch._include import Verdict, html_title
from afetch._url import parse_url
from afetch.attempt.include import BodyKeeper

#: Lower-case marks of a parking service in a page's HTML: the services' own names and script
#: hosts, and the phrases of a domain offered for sale. Documented in docs/include.md.
PARKING_MARKERS: tuple[bytes, ...] = (
    b"sedoparking",
    b"sedo.com",
    b"parkingcrew",
    b"bodis.com",
    b"parklogic",
    b"above.com",
    b"dan.com",
    b"afternic",
    b"hugedomains",
    b"domain is for sale",
    b"buy this domain",
    b"this domain may be for sale",
    b"domain parking",
)

#: Bottom-k MinHash: the sketch keeps the k smallest shingle hashes.
SKETCH_SIZE = 64
#: A kept body up to this size is signed on the loop (about 3 ms of Python for 16 KiB of words,
#: 270 ms for 1 MiB: a sign costs more per byte than the body keys' ``ON_LOOP_MAX``).
SIGN_ON_LOOP_MAX = 16 * 1024
#: The least estimated Jaccard similarity of two sketches that counts as the same page.
SIMILAR = 0.8

_WORD = re.compile(r"\w+")
_HIDDEN = (b"script", b"style")

#: The canary verdict of a response that is not a 200 (or whose host's canary was not).
NOT_SOFT = Verdict(soft_404=False, parked=False)


class Sign(NamedTuple):
    """What a 200 page looks like, to compare with another page of the same host."""

    status: int
    #: ``len(kept body).bit_length()``: its power-of-two size class.
    length_class: int
    title: str | None
    #: Bottom-k MinHash of the visible text's word 3-shingles (this process's string hash: a
    #: sign is only compared within a run).
    sketch: frozenset[int]
    parking: bool
    #: Where the canary's redirects ended (None: it was not redirected): the page that
    #: missing paths land on is no soft 404 when asked for itself.
    landing: str | None = None


def visible_words(data: bytes, content_type: str | None, drop: frozenset[str]) -> list[str]:
    """The lower-cased words of an HTML (or text) body outside tags, scripts and styles, less
    ``drop``. Linear: one split on ``<``, each piece looked at once.

    >>> visible_words(b"<p>Not <b>found</b>: /x9</p><script>var a</script>", None,
    ...               frozenset({"x9"}))
    ['not', 'found']
    """
    from afetch._include import charset

    texts = []
    hidden: bytes | None = None
    pieces = data.split(b"<")
    texts.append(pieces[0])
    for piece in pieces[1:]:
        tag, closed, text = piece.partition(b">")
        if not closed:
            continue  # an unclosed tag: nothing visible follows it in this piece
        name = tag[:7].lower()
        if hidden is not None:
            if name.startswith(b"/" + hidden):
                hidden = None
                texts.append(text)
            continue
        for kind in _HIDDEN:
            if name.startswith(kind):
                hidden = kind
                break
        else:
            texts.append(text)
    text = b" ".join(texts).decode(charset(content_type), "replace").lower()
    return [word for word in _WORD.findall(text) if word not in drop]


def sketch(words: list[str]) -> frozenset[int]:
    """Bottom-:data:`SKETCH_SIZE` MinHash of the word 3-shingles (the words, when fewer)."""
    shingles = set(zip(words, words[1:], words[2:], strict=False)) if len(words) >= 3 else words
    return frozenset(heapq.nsmallest(SKETCH_SIZE, {hash(s) for s in shingles}))


def similarity(a: frozenset[int], b: frozenset[int]) -> float:
    """Estimated Jaccard similarity of the sets two bottom-k sketches were taken of.

    >>> similarity(frozenset({1, 2, 3}), frozenset({1, 2, 3})), similarity(frozenset(), frozenset())
    (1.0, 1.0)
    """
    if not a and not b:
        return 1.0
    union = heapq.nsmallest(SKETCH_SIZE, a | b)
    return sum(1 for h in union if h in a and h in b) / len(union)


def path_words(url: str) -> frozenset[str]:
    """The words of a URL's path and query: what a catch-all page may echo back.

    >>> sorted(path_words("http://h/No%20such/page?q=1"))
    ['1', 'no', 'page', 'q', 'such']
    """
    parts = urlsplit(url)
    return frozenset(_WORD.findall(unquote(f"{parts.path} {parts.query}").lower()))


def page_sign(
    status: int, kept: BodyKeeper, content_type: str | None, url: str, landing: str | None = None
) -> Sign:
    """The :class:`Sign` of a page fetched from ``url`` (linear in the kept body)."""
    data = kept.data()
    drop = path_words(url)
    title = html_title(data, content_type)
    if title is not None:
        title = " ".join(w for w in _WORD.findall(title.lower()) if w not in drop)
    lowered = data.lower()
    parking = any(marker in lowered for marker in PARKING_MARKERS)
    words = visible_words(data, content_type, drop)
    return Sign(status, len(data).bit_length(), title, sketch(words), parking, landing)


async def sign_of(
    status: int, kept: BodyKeeper, content_type: str | None, url: str, landing: str | None = None
) -> Sign:
    """:func:`page_sign`, in a worker thread for a body over :data:`SIGN_ON_LOOP_MAX`."""
    if kept.size <= SIGN_ON_LOOP_MAX:
        return page_sign(status, kept, content_type, url, landing)
    return await asyncio.to_thread(page_sign, status, kept, content_type, url, landing)


def verdict(page: Sign, canary: Sign | None, url: str) -> Verdict:
    """Whether ``page`` (fetched from ``url``) is its host's soft 404, and parked."""
    if (
        canary is None
        or page.status != 200
        or canary.status != 200
        or abs(page.length_class - canary.length_class) > 1
        or page.title != canary.title
        or (canary.landing is not None and parse_url(url).shown == canary.landing)
        or similarity(page.sketch, canary.sketch) < SIMILAR
    ):
        return NOT_SOFT
    return Verdict(soft_404=True, parked=page.parking or canary.parking)
