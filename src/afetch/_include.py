"""``--include``: the one table of the record keys a run may ask for beyond the schema.

Each :class:`IncludeKey` says what the key is built from (its :data:`Source`) and how. Everything
else follows from :data:`INCLUDE`: the names ``--include`` takes and their order in a record
(:func:`parse_include`, ``--help``), what an attempt keeps for them and what the engine is asked
to collect (:mod:`afetch.attempt.include`), the sinks' columns (:func:`record_keys`). A new key is
one entry here plus its row in docs/include.md (tests/test_docs.py checks both ways).

A foundation, as :mod:`afetch._errors` is, because :class:`afetch._settings.Settings` checks the
names it is given. The builders are pure: the attempt hands them what the engine gave it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable
from operator import attrgetter
from typing import Any, Literal, NamedTuple

#: What a key is built from, all of the final response (after redirects):
#: ``"head"``: its headers, as (name, value) pairs;
#: ``"transfer"``: the engine's ``TransferInfo`` of its transfer (timings, address);
#: ``"tls"``: the same, with the TLS details the engine then collects for every connection;
#: ``"body"``: a :class:`Body`, the first ``--body-limit`` bytes of its decoded body;
#: ``"canary"``: a :class:`Verdict`, the body's likeness to its host's canary page (the body is
#: kept as for ``"body"``; see :mod:`afetch.attempt.soft404`).
Source = Literal["head", "transfer", "tls", "body", "canary"]


class Body(NamedTuple):
    """The kept part of a body, for the ``"body"`` builders."""

    data: bytes
    #: The body was longer than what was kept.
    truncated: bool
    content_type: str | None


class Verdict(NamedTuple):
    """What a final response's likeness to its host's canary says, for the ``"canary"`` keys."""

    #: A 200 that looks like the page the host serves for a path that cannot exist.
    soft_404: bool
    #: Such a page that also carries a parking service's marks.
    parked: bool


class IncludeKey(NamedTuple):
    """One record key of :data:`INCLUDE`."""

    #: The record key, and the name ``--include`` takes (unless ``comes_with``).
    name: str
    source: Source
    #: The value from the source; not called when the record has no source (no response, a
    #: failed transfer, a HEAD): the key is then ``default``.
    build: Callable[[Any], Any]
    default: Any = None
    #: Not named on its own: on whenever this other key is.
    comes_with: str | None = None
    #: The name ``--include`` takes, where it is not the record key's.
    option: str | None = None


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


def _json_unless_cut(body: Body) -> Any:
    # A body cut at --body-limit is no JSON document, whatever its first bytes say.
    return None if body.truncated else json_value(body.data)


#: The table, in record order: included keys follow the schema and optional keys in this order,
#: whatever the order on the command line.
INCLUDE: tuple[IncludeKey, ...] = (
    IncludeKey("headers", "head", headers_object),
    IncludeKey("timings", "transfer", attrgetter("timings")),
    IncludeKey("remote", "transfer", attrgetter("remote")),
    IncludeKey("tls", "tls", attrgetter("tls")),
    IncludeKey("body", "body", lambda body: body_text(body.data, body.content_type)),
    IncludeKey("body_truncated", "body", lambda body: body.truncated, False, comes_with="body"),
    IncludeKey("json", "body", _json_unless_cut),
    IncludeKey("title", "body", lambda body: html_title(body.data, body.content_type)),
    IncludeKey("soft_404", "canary", attrgetter("soft_404"), option="soft404"),
    IncludeKey("parked", "canary", attrgetter("parked"), comes_with="soft404"),
)
#: Every included record key, in record order.
RECORD_KEYS = tuple(key.name for key in INCLUDE)
#: What ``--include`` may name, in record order.
NAMES = tuple(key.option or key.name for key in INCLUDE if key.comes_with is None)
#: The value of an included key a record has nothing for, where it is not ``None``.
DEFAULTS = {key.name: key.default for key in INCLUDE if key.default is not None}


def parse_include(names: str | Iterable[str]) -> tuple[str, ...]:
    """``--include`` names (strings may hold comma-separated lists) in record order.

    >>> parse_include(["title,headers", "headers"])
    ('headers', 'title')
    """
    asked = set()
    for item in [names] if isinstance(names, str) else names:
        for name in item.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in NAMES:
                raise ValueError(f"unknown --include key {name!r} (choose from {', '.join(NAMES)})")
            asked.add(name)
    return tuple(name for name in NAMES if name in asked)


def included(names: Collection[str]) -> tuple[IncludeKey, ...]:
    """The keys that ``--include`` names turn on, in record order.

    >>> [key.name for key in included(("title", "body"))]
    ['body', 'body_truncated', 'title']
    """
    return tuple(key for key in INCLUDE if (key.comes_with or key.option or key.name) in names)


def record_keys(names: Collection[str]) -> tuple[str, ...]:
    """The record keys that ``--include`` names turn on, in record order.

    >>> record_keys(("title", "body"))
    ('body', 'body_truncated', 'title')
    """
    return tuple(key.name for key in included(names))


# -- the body's builders: each linear in the kept body's size, which --body-limit bounds --------


#: The opening tag ("<title>", "<title lang=en>"; not "<titles>"), in the lower-cased body.
_TITLE_START = re.compile(rb"<title(?![a-z0-9_])")
#: The closing tag, searched for in the lower-cased body. Linear: only where "</title" occurs
#: is the white space after it scanned, and those runs never overlap.
_TITLE_END = re.compile(rb"</title\s*>")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


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
    import json  # --include json only: --help and usage errors never load it

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
