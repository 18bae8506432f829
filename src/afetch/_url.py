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


# The common case, checked by one regular expression: a lower-case http(s) scheme, a plain
# ASCII host, an optional port, a path and query of characters that need no encoding, no
# credentials and no fragment. Such a URL is sent as it is (with "/" for an empty path).
_PLAIN = re.compile(
    r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:/[!$&'()*+,\-./0-9:;=?@A-Z_a-z~%]*)?)"
)


def parse_url(raw: str) -> Target:
    """Check ``raw``; raises :class:`InvalidURL` (error type ``invalid_url``) when it is not a
    fetchable http(s) URL."""
    plain = _PLAIN.fullmatch(raw)
    if plain is not None:
        scheme, host, port_text, tail = plain.groups()
        port = int(port_text) if port_text else None
        if (port is None or 0 < port < 65536) and host.strip("."):
            if host[0] == "[":
                host = host[1:-1]
            url = raw if tail else f"{raw}/"
            return Target(url, (scheme, host, port or _DEFAULT_PORTS[scheme]), None, url)
    return _parse_any(raw)


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
    path = parts.path or "/"
    if _NEEDS_QUOTING.search(path):
        path = quote(path, safe=_SAFE)
    query = parts.query
    if query and _NEEDS_QUOTING.search(query):
        query = quote(query, safe=_SAFE)
    tail = f"{path}?{query}" if query or raw.rstrip().endswith("?") else path
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


def join(base: str, location: str) -> Target:
    """The redirect target ``location`` relative to ``base``.

    >>> join("http://127.0.0.1:8080/a/b", "../c").url
    'http://127.0.0.1:8080/c'
    """
    return parse_url(urljoin(base, location.strip()))
