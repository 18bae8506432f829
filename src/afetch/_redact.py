"""Keeping secrets out of what afetch prints: URL passwords and ``-H`` header values."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://user:password@ — the password is everything up to the last '@' before the path.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*:)(?P<password>[^/?#\s]*)@")
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
    text = mask_url(text)
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    return text


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
