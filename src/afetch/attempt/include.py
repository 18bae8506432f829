"""``--include``: the record keys a run asks for beyond the schema.

Nothing here runs unless ``--include`` names a key: the fetcher builds no :class:`Wanted` and
keeps no body for a run without it, so the default record and its cost are unchanged. What an
engine knows about a transfer (timings, address, TLS) arrives as an
:class:`afetch.engine.base.TransferInfo`; the body-derived keys are computed here from the first
``body_limit`` bytes of the decoded body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from afetch.engine.base import TransferInfo

#: Keys that need the engine's :class:`TransferInfo` of the final response.
INFO_KEYS = frozenset({"timings", "remote", "tls"})
#: Keys computed from the kept part of the body.
BODY_KEYS = frozenset({"body", "json", "title"})
_TITLE = re.compile(rb"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_CHARSET = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


class Wanted:
    """What the ``include`` names of a run need from each attempt."""

    __slots__ = ("body", "body_limit", "headers", "info", "names")

    def __init__(self, names: Sequence[str], *, body_limit: int) -> None:
        self.names = tuple(names)
        self.headers = "headers" in names
        self.info = not INFO_KEYS.isdisjoint(names)
        self.body = not BODY_KEYS.isdisjoint(names)
        self.body_limit = body_limit

    def keeper(self) -> BodyKeeper:
        return BodyKeeper(self.body_limit)


class BodyKeeper:
    """Keeps the first ``limit`` bytes of a body; what comes after is only noticed.

    >>> keeper = BodyKeeper(4)
    >>> keeper.add(b"abc"); keeper.add(b"def")
    >>> keeper.data(), keeper.truncated
    (b'abcd', True)
    """

    __slots__ = ("_parts", "limit", "size", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.truncated = False
        self._parts: list[bytes] = []

    def add(self, piece: bytes) -> None:
        room = self.limit - self.size
        if len(piece) > room:
            if not piece:
                return
            self.truncated = True
            if room <= 0:
                return
            piece = piece[:room]
        self._parts.append(piece)
        self.size += len(piece)

    def data(self) -> bytes:
        return b"".join(self._parts)


def build_extra(
    wanted: Wanted,
    *,
    headers: Iterable[tuple[str, str]] | None,
    content_type: str | None,
    info: TransferInfo | None,
    kept: BodyKeeper | None,
) -> dict[str, Any]:
    """The included keys of one record, in record order (``None`` for what is unknown)."""
    names = wanted.names
    extra: dict[str, Any] = {}
    if wanted.headers:
        extra["headers"] = None if headers is None else headers_object(headers)
    if info is None:
        info = TransferInfo()
    if "timings" in names:
        extra["timings"] = info.timings
    if "remote" in names:
        extra["remote"] = info.remote
    if "tls" in names:
        extra["tls"] = info.tls
    if wanted.body:
        data = None if kept is None else kept.data()
        if "body" in names:
            extra["body"] = None if data is None else body_text(data, content_type)
            extra["body_truncated"] = kept is not None and kept.truncated
        if "json" in names:
            extra["json"] = None if data is None or (kept and kept.truncated) else json_value(data)
        if "title" in names:
            extra["title"] = None if data is None else html_title(data, content_type)
    return extra


def headers_object(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case name → value; a repeated name's values joined with ``", "``.

    >>> headers_object([("vary", "accept"), ("etag", '"1"'), ("vary", "origin")])
    {'vary': 'accept, origin', 'etag': '"1"'}
    """
    result: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def charset(content_type: str | None) -> str:
    """The ``charset`` of a Content-Type, if Python knows it; else UTF-8.

    >>> charset("text/html; charset=ISO-8859-1"), charset("text/html"), charset("a; charset=zz")
    ('iso8859-1', 'utf-8', 'utf-8')
    """
    import codecs

    match = _CHARSET.search(content_type or "")
    if match is not None:
        try:
            codec = codecs.lookup(match.group(1))
        except LookupError:
            return "utf-8"
        # Only text encodings: a server's "charset=base64" or "unicode_escape" names a codec
        # that is not one (it raises, or yields lone surrogates no record can carry).
        if codec._is_text_encoding and codec.name not in _SURROGATE_CODECS:  # type: ignore[attr-defined]
            return codec.name
    return "utf-8"


#: Text codecs whose decoding can produce lone surrogates (not writable as UTF-8).
_SURROGATE_CODECS = frozenset({"utf-7", "unicode-escape", "raw-unicode-escape"})


def body_text(data: bytes, content_type: str | None) -> str:
    """The body as text: charset from Content-Type, else UTF-8; bad bytes become U+FFFD.

    >>> body_text("café".encode("latin-1"), "text/plain; charset=latin-1")
    'café'
    >>> body_text(b"caf\\xe9", None)
    'caf�'
    """
    return data.decode(charset(content_type), "replace")


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (the record itself must stay valid JSON).
    raise ValueError(name)


def json_value(data: bytes) -> Any:
    """The body parsed as JSON (UTF-8, -16 or -32), or ``None`` when it is not JSON.

    >>> json_value(b'{"a": [1, 2]}'), json_value(b"<html>"), json_value(b"NaN")
    ({'a': [1, 2]}, None, None)
    """
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
        # Lone surrogates ("\ud800") parse but cannot be written out as UTF-8.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeError are ValueErrors
        return None
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: JSON has no infinity, records could not carry it
        raise ValueError(text[:20])
    return value


def html_title(data: bytes, content_type: str | None) -> str | None:
    """The first ``<title>`` of an HTML body, entities decoded and whitespace collapsed.

    >>> html_title(b"<html><head><TITLE lang=en>\\n A &amp; B\\n</title>", None)
    'A & B'
    >>> html_title(b"no title here", "text/html") is None
    True
    """
    import html  # only with --include title

    match = _TITLE.search(data)
    if match is None:
        return None
    text = html.unescape(match.group(1).decode(charset(content_type), "replace"))
    return " ".join(text.split())
