"""Request objects: an input line that starts with ``{`` asks for more than a GET of a URL.

A line of JSON Lines input is a request object::

    {"url": "https://api.test/items", "method": "POST", "json": {"name": "x"}, "meta": {"id": 7}}

``url`` is required; ``method``, ``headers`` (an object of strings), ``body`` (a string) or
``json`` (any value), and ``meta`` (any value, copied unchanged into the record) are optional.
Any other key makes the line invalid (``"data": did you mean "body"?``): a misspelt key silently
ignored would send a request other than the one asked for. afetch's own records are valid input:
an object with record keys (``final_url``, ``status``, ...) is a record, of which only ``url``,
``method`` and ``meta`` count (its ``headers``, ``body`` and ``json`` are what the server sent).
Plain URL lines never come here: they stay ``str`` all the way to the fetcher, which keeps the
hot path as it was.

A line that is not a valid request object still becomes a :class:`RequestSpec`, with ``invalid``
saying why; the fetcher turns it into a record with the error type ``invalid_input``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from afetch._record import SCHEMA_KEYS
from afetch._settings import METHODS

#: How much of a malformed line its record's ``url`` shows.
SHOWN = 200
#: ``body`` kinds: how the Content-Type (and Accept) headers are chosen.
FORM = "form"
JSON = "json"
#: The keys of a request object.
REQUEST_KEYS = ("url", "method", "headers", "body", "json", "meta")
#: Keys only a record has: an object with one of them is a record fed back as input.
_RECORD_ONLY_KEYS = frozenset(SCHEMA_KEYS) - {"url"}
#: What other tools call a request object's keys (curl, requests, httpx, fetch, HTTPie).
_SYNONYMS = {
    "data": "body",
    "data_raw": "body",
    "data_binary": "body",
    "form": "body",
    "payload": "body",
    "content": "body",
    "text": "body",
    "json_body": "json",
    "header": "headers",
    "verb": "method",
    "request": "method",
    "x": "method",
    "uri": "url",
    "href": "url",
    "link": "url",
    "location": "url",
    "params": "url",
    "query": "url",
    "metadata": "meta",
    "id": "meta",
    "tag": "meta",
    "extra": "meta",
}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request asked for by a request object (or built by a library caller).

    ``method`` None means the run's method (``-X``), else POST when there is a body, else GET.
    ``body`` None means the run's body (``-d``/``--json``), if any. ``headers`` are sent after the
    run's headers and replace those of the same name; their values are never echoed.

    >>> spec = RequestSpec.from_object({"url": "http://127.0.0.1/", "json": [1], "meta": "a"})
    >>> spec.body, spec.body_kind, spec.meta
    (b'[1]', 'json', 'a')
    """

    url: str
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    #: ``"form"`` (Content-Type application/x-www-form-urlencoded, as curl's -d) or ``"json"``
    #: (Content-Type and Accept application/json, as curl's --json).
    body_kind: str = FORM
    meta: Any = None
    #: Why the input line is not a request (the record's error, type ``invalid_input``).
    invalid: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RequestSpec:
        """The request a parsed request object asks for; raises ValueError if it is not one."""
        if _RECORD_ONLY_KEYS.isdisjoint(obj):
            _check_keys(obj)
        else:
            # One of afetch's records: its headers, body and json are the response's.
            obj = {key: obj[key] for key in ("url", "method", "meta") if key in obj}
        url = obj.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ValueError('"url" must be a non-empty string')
        method = obj.get("method")
        if method is not None:
            if not isinstance(method, str) or method.upper() not in METHODS:
                raise ValueError(f'"method" must be one of {", ".join(METHODS)}')
            method = method.upper()
        headers = _headers(obj.get("headers"))
        body, kind = None, FORM
        if "json" in obj:
            if obj.get("body") is not None:
                raise ValueError('give "body" or "json", not both')
            body, kind = _dumps(obj["json"]).encode("utf-8"), JSON
        elif obj.get("body") is not None:
            if not isinstance(obj["body"], str):
                raise ValueError('"body" must be a string (use "json" for other values)')
            body = obj["body"].encode("utf-8")
        if body is not None and method == "HEAD":
            raise ValueError("a HEAD request has no body")
        return cls(url.strip(), method, headers, body, kind, obj.get("meta"))


def _check_keys(obj: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first key that is not a request object's, with a hint.

    >>> _check_keys({"url": "u", "data": "k=v"})
    Traceback (most recent call last):
    ...
    ValueError: unknown key "data": did you mean "body"?
    """
    for key in obj:
        if key in REQUEST_KEYS:
            continue
        # Only the key is shown (its value may be a secret), cut like a header name.
        shown = json.dumps(key[:40], ensure_ascii=True)
        guess = _SYNONYMS.get(key.lower().replace("-", "_"))
        if guess is None:
            import difflib  # here: only a misspelt key needs it

            close = difflib.get_close_matches(key.lower(), REQUEST_KEYS, n=1, cutoff=0.6)
            guess = close[0] if close else None
        if guess is None:
            raise ValueError(f"unknown key {shown}; the keys are {', '.join(REQUEST_KEYS)}")
        if guess == "meta":
            raise ValueError(f'unknown key {shown}: your own data goes in "meta"')
        where = " (the query string goes in the URL)" if key.lower() in ("params", "query") else ""
        raise ValueError(f'unknown key {shown}: did you mean "{guess}"?{where}')


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError('"headers" must be an object of strings')
    pairs = []
    for name, text in value.items():
        # Only names are ever shown: a value may be a secret.
        if not name or not set(name) <= _TOKEN:
            raise ValueError(f"header name {name[:40]!r} is not a valid name")
        if not isinstance(text, str):
            raise ValueError(f"header {name!r} must have a string value")
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
            raise ValueError(f"the value of header {name!r} has control characters")
        pairs.append((name, text.strip()))
    return tuple(pairs)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: JSON has no infinity, records could not carry it
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_request(line: str) -> RequestSpec:
    """The request a ``{`` line asks for; an ``invalid`` spec when it is not one, never raises.

    >>> parse_request('{"url": "http://127.0.0.1/", "method": "post"}').method
    'POST'
    >>> bad = parse_request('{"url": 1}')
    >>> bad.url, bad.invalid
    ('{"url": 1}', 'invalid request object: "url" must be a non-empty string')
    """
    obj: object = None
    try:
        obj = json.loads(line, parse_float=_finite, parse_constant=_no_constant)
        if not isinstance(obj, dict):
            raise ValueError("a line starting with '{' must be one JSON object")
        spec = RequestSpec.from_object(obj)
        # Lone surrogates ("\ud800") parse but cannot be written out as UTF-8.
        _dumps([spec.url, spec.meta, spec.headers]).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        if isinstance(exc, json.JSONDecodeError):
            reason = f"not valid JSON: {exc.msg} at column {exc.colno}"
        elif isinstance(exc, UnicodeError):
            reason = "a string holds a lone surrogate (not UTF-8)"
        return RequestSpec(_shown(line, obj), invalid=f"invalid request object: {reason}")
    return spec


def _shown(line: str, obj: object) -> str:
    """What the record of a malformed line shows as its ``url``: the line, cut to ``SHOWN``
    characters, but never a header value (they may be secrets, as -H values are).

    >>> _shown('{"url": 1, "headers": {"A": "s3cret"}}', {"url": 1, "headers": {"A": "s3cret"}})
    '{"url": 1, "headers": {"A": "***"}}'
    >>> _shown('{"url": "x", "token": "s3cret"}', {"url": "x", "token": "s3cret"})
    '{"url": "x", "token": "***"}'
    >>> _shown('{"url": "x", "headers": {"A": "s3cret"', None)
    '{"url": "x", …'
    """
    if isinstance(obj, dict) and ("headers" in obj or not obj.keys() <= set(REQUEST_KEYS)):
        # Parsed, but not a valid request: the same object with its header values masked, and
        # the values of unknown keys ("token", "auth", ...: they may be secrets too).
        headers = obj.get("headers")
        masked = {k: "***" for k in headers} if isinstance(headers, dict) else "***"
        shown = {k: v if k in REQUEST_KEYS else "***" for k, v in obj.items()}
        if "headers" in obj:
            shown["headers"] = masked
        try:
            # ASCII: a lone surrogate the object may hold cannot reach the output as UTF-8.
            line = json.dumps(shown)
        except (ValueError, RecursionError):
            line = line[: line.find('"headers"')] + "…"
    elif obj is None and ("headers" in line or "\\u" in line):
        # Not JSON: nothing from where header values may start onwards ("\u" escapes could spell
        # the key too, so the line ends at the first of either).
        cut = min(i for i in (line.find("headers"), line.find("\\u")) if i >= 0)
        cut = line.rfind('"', 0, cut) if '"' in line[:cut] else cut
        line = line[:cut] + "…"
    return line[:SHOWN]


def request_key(item: str | RequestSpec) -> str:
    """What ``--shard`` and ``--state`` know a request by: the URL of a plain line (as before),
    else a digest of method, URL and body (never the body itself, which may be large).

    >>> request_key("http://127.0.0.1/")
    'http://127.0.0.1/'
    >>> request_key(RequestSpec("http://127.0.0.1/")) == request_key("http://127.0.0.1/")
    True
    >>> request_key(RequestSpec("http://127.0.0.1/", "POST", body=b"a=1"))[:8]
    'request '
    """
    if type(item) is str:
        return item
    # A line break ({"url": "x\n finished"}) would split the key's journal line in two, and
    # could forge the journal's marks: such a URL (never a valid one) goes by its digest.
    plain = item.method is None and item.body is None and item.invalid is None
    if plain and "\n" not in item.url and "\r" not in item.url:
        return item.url
    import hashlib  # here: plain URLs never need it (OpenSSL, ~5 ms)

    digest = hashlib.blake2b(digest_size=16)
    for part in (item.method or "", item.url, item.invalid or ""):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    if item.body is not None:
        digest.update(item.body)
    return f"request {digest.hexdigest()}"
