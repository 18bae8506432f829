"""Checking and normalising URLs on the hot path, without httpx's URL model (~29 µs each).

Only what afetch needs: http(s) only, a real host, a valid port, credentials split off (they
travel as a Basic ``Authorization`` header for their own origin only), the fragment dropped
(never sent), and characters a server cannot take raw (spaces, non-ASCII, controls) percent-
encoded in the path and query, as browsers, curl and httpx do.
"""

from __future__ import annotations

import base64
import re
from typing import NamedTuple
from urllib.parse import quote, unquote, urljoin, urlsplit

from afetch._errors import InvalidURL
from afetch._redact import excerpt

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Characters sent as they are in a path or query (RFC 3986 reserved and unreserved, and %).
_SAFE = "!#$%&'()*+,/:;=?@[]~"
_NEEDS_QUOTING = re.compile(r"[^!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]")


class Target(NamedTuple):
    """A checked URL.

    >>> t = parse_url("HTTP://ann:pw@Example.org:8080/a b?q=1#frag")
    >>> t.url, t.origin, t.authorization
    ('http://example.org:8080/a%20b?q=1', ('http', 'example.org', 8080), 'Basic YW5uOnB3')
    """

    #: What is sent: no credentials, no fragment, encoded.
    url: str
    #: (scheme, host, port) with the default port filled in: what credentials are bound to.
    origin: tuple[str, str, int]
    #: ``Basic ...`` from ``user:password@``, or None.
    authorization: str | None
    #: The URL as afetch reports it (``final_url``): as sent, with the credentials as given.
    shown: str


_new_tuple = tuple.__new__

# The common case, checked by one regular expression: a lower-case http(s) scheme, a plain
# ASCII host, an optional port, a path and query of characters that need no encoding, no
# credentials and no fragment. Such a URL is sent as it is (with "/" for an empty path).
_PLAIN = re.compile(
    r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:/[!$&'()*+,\-./0-9:;=?@A-Z_a-z~%]*)?)"
)


#: A "." or ".." path segment, its dots maybe percent-encoded (%2e); at the start of a relative
#: reference, without its slash.
_DOT_SEGMENT = re.compile(r"(^|/)((?:\.|%2e){1,2})(?=[/?#]|$)", re.IGNORECASE)
#: A percent-encoding with a lower-case hex digit.
_LOWER_ESCAPE = re.compile(r"%(?:[0-9a-f][a-f]|[a-f][0-9A-F])")


def parse_url(raw: str) -> Target:
    """Check ``raw``; raises :class:`InvalidURL` (error type ``invalid_url``) when it is not a
    fetchable http(s) URL."""
    target = plain_target(raw)
    return _parse_any(raw) if target is None else target


def plain_target(raw: str) -> Target | None:
    """:func:`parse_url` of the usual URL (None: any other, which ``parse_url`` reads the long
    way): what the scheduler reads a host key from (afetch.schedule.hosts.locate).

    >>> plain_target("http://127.0.0.1:8080/a?b").origin, plain_target("HTTP://a.test/")
    (('http', '127.0.0.1', 8080), None)
    """
    plain = _PLAIN.fullmatch(raw)
    if plain is not None:
        scheme, host, port_text, tail = plain.groups()
        port = int(port_text) if port_text else None
        # Else _normal_path has work; the path is only cut from the query when that may matter.
        plain_path = "%" not in tail and "/." not in tail
        if not plain_path:
            path = tail.partition("?")[0]
            plain_path = "%" not in path and "/." not in path
        if (port is None or 0 < port < 65536) and host.strip(".") and plain_path:
            if host[0] == "[":
                host = host[1:-1]
            url = raw if tail else f"{raw}/"
            # Target(...) by tuple.__new__: a NamedTuple's own __new__ is a Python function
            # called from C (~1,300 instructions more, once per URL).
            return _new_tuple(
                Target, (url, (scheme, host, port or _DEFAULT_PORTS[scheme]), None, url)
            )
    return None


def _parse_any(raw: str) -> Target:
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(f"not an http(s) URL: {excerpt(raw, 200)!r}")
    host = parts.hostname or ""
    if not host or "%" in host or any(c.isspace() or ord(c) < 32 for c in host):
        raise InvalidURL(f"URL has no valid host: {excerpt(raw, 200)!r}")
    if port is not None and not 0 < port < 65536:
        raise InvalidURL(f"URL has no valid port: {excerpt(raw, 200)!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURL(f"URL has no valid host: {exc}") from None
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    path = _normal_path(parts.path or "/")
    if _NEEDS_QUOTING.search(path):
        path = quote(path, safe=_SAFE)
    query = parts.query
    if query and _NEEDS_QUOTING.search(query):
        query = quote(query, safe=_SAFE)
    # An empty query ("/a?") is kept, as libcurl sends it; a "?" in the fragment is not one.
    kept = query or raw.rstrip().partition("#")[0].endswith("?")
    tail = f"{path}?{query}" if kept else path
    url = f"{scheme}://{netloc}{tail}"
    authorization = None
    shown = url
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
        shown = f"{scheme}://{userinfo}@{netloc}{tail}"
    return Target(url, (scheme, host, port or _DEFAULT_PORTS[scheme]), authorization, shown)


def _normal_path(path: str) -> str:
    """The path as libcurl sends it (RFC 3986 section 6.2.2): percent-encodings upper-cased,
    dot segments removed. afetch sends and reports this one, so ``final_url`` is what was
    requested, on every engine.

    >>> _normal_path("/a/%2e%2e/b%c3%a9/%7e")
    '/b%C3%A9/%7E'
    """
    if "%" in path:
        path = _LOWER_ESCAPE.sub(lambda m: m.group().upper(), path)
    return _remove_dot_segments(path)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, a percent-encoded dot counting as a dot, as curl does: the
    path afetch reports in ``final_url`` is the one sent, on every engine.

    >>> _remove_dot_segments("/a/b/%2e%2E/c/./d/..")
    '/a/c/'
    """
    if _DOT_SEGMENT.search(path) is None:
        return path
    kept: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        dots = segment.lower().replace("%2e", ".")
        if dots == "..":
            if kept:
                kept.pop()
        elif dots != ".":
            kept.append(segment)
    # A path ending in a dot segment names a directory: "/a/b/.." is "/a/".
    slash = "/" if segments[-1].lower().replace("%2e", ".") in (".", "..") else ""
    return "/" + "/".join(kept) + slash if kept else "/"


def join(base: str, location: str) -> Target:
    """The redirect target ``location`` relative to ``base``.

    >>> join("http://127.0.0.1:8080/a/b", "../c").url
    'http://127.0.0.1:8080/c'
    >>> join("http://127.0.0.1:8080/a", "/b#?").url  # a "?" in the fragment: no query sent
    'http://127.0.0.1:8080/b'
    """
    # Encoded dots made plain first: urljoin resolves "." and ".." only.
    reference = _location_text(location.strip())
    path_end = len(reference.partition("#")[0].partition("?")[0])
    if "%" in reference[:path_end]:
        plain = _DOT_SEGMENT.sub(_plain_dots, reference[:path_end])
        reference = plain + reference[path_end:]
    return parse_url(urljoin(base, reference))


def _plain_dots(match: re.Match[str]) -> str:
    return match.group(1) + "." * (len(match.group(2)) - 2 * match.group(2).count("%"))


def _location_text(location: str) -> str:
    """A ``Location`` value as engines give header values (Latin-1: one character a byte) made
    the text it was sent as: UTF-8 when its bytes are UTF-8 (``é`` is sent as ``%C3%A9``, not
    as the ``%C3%83%C2%A9`` of its two Latin-1 characters), else its bytes percent-encoded one
    by one (``%E9``), as browsers and curl do.

    >>> _location_text("/caf\xc3\xa9"), _location_text("/caf\xe9")
    ('/café', '/caf%E9')
    """
    if location.isascii():
        return location
    try:
        raw = location.encode("latin-1")
    except UnicodeEncodeError:
        return location  # already text: a character no single byte holds
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(byte) if byte < 0x80 else f"%{byte:02X}" for byte in raw)
