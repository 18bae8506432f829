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
#: The opening tag ("<title>", "<title lang=en>"; not "<titles>"), in the lower-cased body.
_TITLE_START = re.compile(rb"<title(?![a-z0-9_])")
#: The closing tag, searched for in the lower-cased body. Linear: only where "</title" occurs
#: is the white space after it scanned, and those runs never overlap.
_TITLE_END = re.compile(rb"</title\s*>")
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
    derived: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The included keys of one record, in record order (``None`` for what is unknown).

    ``derived``: the body's keys as :func:`derive` computed them (off the loop for a large
    body); computed here when not given."""
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
        extra.update(derived if derived is not None else body_keys(names, kept, content_type))
    return extra


#: A kept body up to this size has its keys computed on the loop (a thread hop would cost
#: more); a larger one in a worker thread. Every step is linear, but a MiB of entities or JSON
#: numbers still costs 100 ms or more of Python: never on the loop, where it would hold up
#: every other transfer and the signal handlers.
ON_LOOP_MAX = 64 * 1024


async def derive(
    wanted: Wanted, kept: BodyKeeper | None, content_type: str | None
) -> dict[str, Any] | None:
    """The body's keys of a record (see :func:`body_keys`), off the loop when the body is large."""
    if not wanted.body:
        return None
    if kept is None or kept.size <= ON_LOOP_MAX:
        return body_keys(wanted.names, kept, content_type)
    import asyncio

    return await asyncio.to_thread(body_keys, wanted.names, kept, content_type)


def body_keys(
    names: Sequence[str], kept: BodyKeeper | None, content_type: str | None
) -> dict[str, Any]:
    """``body``, ``body_truncated``, ``json`` and ``title`` as asked for: each linear in the
    kept body's size, which ``--body-limit`` bounds."""
    extra: dict[str, Any] = {}
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
    """The ``charset`` of a Content-Type, if it is one of :data:`WEB_CHARSETS`; else UTF-8.

    >>> charset("text/html; charset=ISO-8859-1"), charset("text/html"), charset("a; charset=zz")
    ('iso8859-1', 'utf-8', 'utf-8')
    >>> charset("text/html; charset=punycode")  # a codec, but no web page's: quadratic to decode
    'utf-8'
    """
    import codecs

    match = _CHARSET.search(content_type or "")
    if match is not None:
        try:
            name = codecs.lookup(match.group(1)).name
        except LookupError:
            return "utf-8"
        if name in WEB_CHARSETS:
            return name
    return "utf-8"


#: The charsets a body is decoded from, as Python names its codecs: the WHATWG Encoding
#: Standard's (what browsers decode), ISO-8859-1 and ASCII. Each decodes in C, in linear time.
#: Any other name a server gives falls back to UTF-8: Python's codecs include ones that are no
#: text encoding at all (base64, zlib), that yield lone surrogates no record can carry (utf-7,
#: unicode_escape), or that are quadratic (punycode: 1.2 s for 128 KB).
WEB_CHARSETS = frozenset(
    {
        *("utf-8", "utf-16", "utf-16-le", "utf-16-be", "ascii", "iso8859-1", "cp866"),
        *(f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)),
        *("koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "cp874"),
        *(f"cp{n}" for n in range(1250, 1259)),
        *("gbk", "gb18030", "big5", "big5hkscs", "euc_jp", "iso2022_jp", "shift_jis"),
        *("euc_kr", "cp949"),
    }
)


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

    Linear in the body's size whatever it holds (see :func:`_title_span`): the one regex
    ``<title\\b[^>]*>(.*?)</title\\s*>`` took 28 s on 128 KB of unclosed ``<title>``.

    >>> html_title(b"<html><head><TITLE lang=en>\\n A &amp; B\\n</title>", None)
    'A & B'
    >>> html_title(b"no title here", "text/html") is None
    True
    >>> html_title(b"<titles>x</titles><title>y</title >", None)
    'y'
    """
    span = _title_span(data)
    if span is None:
        return None
    import html  # only with --include title

    text = html.unescape(data[span[0] : span[1]].decode(charset(content_type), "replace"))
    return " ".join(text.split())


def _title_span(data: bytes) -> tuple[int, int] | None:
    """Where the first title's text is: what ``<title\\b[^>]*>(.*?)</title\\s*>`` (any case)
    would match, in one pass: once no ``>`` or no closing tag follows the first start, none
    follows a later one either."""
    lowered = data.lower()  # ASCII only: positions hold in ``data``
    started = _TITLE_START.search(lowered)
    if started is None:
        return None
    opened = lowered.find(b">", started.end())
    if opened < 0:
        return None
    closed = _TITLE_END.search(lowered, opened + 1)
    return None if closed is None else (opened + 1, closed.start())
