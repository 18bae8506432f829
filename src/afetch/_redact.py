"""Keeping secrets out of what afetch prints: URL passwords and ``-H`` header values."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"
# scheme://user:password@ — the password is everything up to the last '@' before the path.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*:)(?P<password>[^/?#\s]*)@")
#: Where curl (and so afetch) finds proxies; HTTP_PROXY too, though curl ignores it (httpoxy):
#: a password in it is a secret all the same.
PROXY_ENV = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)
# Shorter values are too likely to appear by chance ("1", "on") to be worth masking.
_MIN_SECRET = 4


def mask_url(url: str) -> str:
    """``url`` with any password in its user-info replaced by ``***``.

    >>> mask_url("https://ann:s3cret@example.org/a?b=c")
    'https://ann:***@example.org/a?b=c'
    >>> mask_url("https://example.org/")
    'https://example.org/'
    """
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", url)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords and each of ``secrets`` masked.

    >>> redact("GET http://u:pw@h/ failed: bad token 'abc123'", ["abc123"])
    "GET http://u:***@h/ failed: bad token '***'"
    """
    # Known secrets first: a password with an '@' in it would fool the URL pattern.
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    return mask_url(text)


def excerpt(text: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """``text`` redacted, then cut to ``limit`` characters (the last one an ellipsis): the one way
    a message quotes text that may hold a secret. Redacting first matters: a cut that drops the
    ``@`` of ``user:password@`` would leave the password for the URL pattern to miss.

    >>> excerpt("ftp://ann:" + "s" * 300 + "@host/", 20)
    'ftp://ann:***@host/'
    >>> excerpt("x" * 30, 10)
    'xxxxxxxxx…'
    """
    text = redact(text, secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def header_secrets(headers: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The values given with ``-H``, plus the credential part of ``Scheme credential`` values."""
    found: set[str] = set()
    for _, value in headers:
        _scheme, _, credential = value.partition(" ")
        for text in (value, credential.strip()):
            if text:
                # Error messages quote values as Python reprs of str or bytes ("a\\r\\nb").
                found.update((text, repr(text)[1:-1], repr(text.encode())[2:-1]))
    return tuple(sorted(found, key=len, reverse=True))


def proxy_secrets(proxy: str | None, env: dict[str, str] | None = None) -> tuple[str, ...]:
    """The user names and passwords of ``proxy`` and of the environment's proxies, as typed and
    percent-decoded: libcurl's messages name proxies, and a message must never show them.

    >>> proxy_secrets("socks5h://ann:pa%24%24word@10.1.2.3:1080", env={})
    ('pa%24%24word', 'pa$$word', 'ann')
    >>> proxy_secrets(None, env={"https_proxy": "http://tok-12345@proxy:3128"})
    ('tok-12345',)
    >>> proxy_secrets("http://ann:pa/ss-word@127.0.0.1:1", env={})
    ('pa/ss-word', 'ann')
    """
    environ = os.environ if env is None else env
    found: set[str] = set()
    for url in (proxy, *(environ.get(name) for name in PROXY_ENV)):
        if not url:
            continue
        rest = url.partition("://")[2] if "://" in url else url
        # Up to the last "@" (not the first "/"): a password may hold a "/" that makes the
        # proxy URL invalid, and libcurl's message then quotes it whole.
        userinfo = rest.rpartition("@")[0]
        for part in userinfo.split(":", 1) if userinfo else ():
            found.update(p for p in (part, unquote(part)) if p)
    return tuple(sorted(found, key=len, reverse=True))
