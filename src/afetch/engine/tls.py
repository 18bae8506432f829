"""TLS: the verification settings (``--insecure``, ``--cacert``) and what a connection says
about itself (:class:`TlsDetails`, the record's ``tls`` object with ``--include tls``).

The engines use both; nothing here knows records, ``--include`` or an engine.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from afetch._settings import Settings


def load_cacert(path: str) -> ssl.SSLContext:
    """A verifying client context that trusts exactly the CA certificates in ``path`` (as curl).

    Raises ``OSError`` or ``ssl.SSLError`` when the file cannot be read or holds no certificate.
    """
    return ssl.create_default_context(cafile=path)


def tls_verify(settings: Settings) -> ssl.SSLContext | bool:
    """What to pass as a transport's ``verify=``: False, True (the default bundle) or a context.

    >>> tls_verify(Settings(verify=False)), tls_verify(Settings())
    (False, True)
    """
    if not settings.verify:
        return False
    if settings.cacert is not None:
        return load_cacert(settings.cacert)
    return True


# -- libcurl's certificate text → the record's ``tls`` object -----------------------------------

#: "Jan  1 00:00:00 2027 GMT", as OpenSSL prints certificate dates.
_CERT_DATE = "%b %d %H:%M:%S %Y GMT"
_SAN_PREFIXES = ("DNS:", "IP Address:")


def _cert_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), _CERT_DATE).replace(tzinfo=UTC)
    except ValueError:
        return None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _san_list(text: str | None) -> list[str]:
    """``DNS:a.test, IP Address:127.0.0.1`` → ``["a.test", "127.0.0.1"]``; other kinds keep
    their prefix (``email:...``)."""
    names = []
    for item in (text or "").split(","):
        item = item.strip()
        for prefix in _SAN_PREFIXES:
            if item.startswith(prefix):
                item = item[len(prefix) :]
                break
        if item:
            names.append(item)
    return names


class TlsDetails:
    """What one TLS connection said about itself; :meth:`record` is the ``tls`` object.

    Kept per connection by the curl engine (a reused connection says nothing again), so
    ``days_left`` is computed when a record asks, not when the connection was made.
    """

    __slots__ = ("_fields", "_not_after")

    def __init__(self, fields: dict[str, Any], not_after: datetime | None) -> None:
        self._fields = fields
        self._not_after = not_after

    @classmethod
    def from_curl(
        cls, line: bytes | None, certinfo: Sequence[Sequence[tuple[str, str]]] | None
    ) -> TlsDetails:
        """From libcurl's "SSL connection using TLSv1.3 / CIPHER / ..." debug line and
        ``CURLINFO_CERTINFO`` (the chain, leaf first, as (name, value) pairs).

        >>> info = TlsDetails.from_curl(
        ...     b"SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384 / x25519 / RSASSA-PSS\\n",
        ...     [[("Subject", "CN = a.test"), ("Issuer", "CN = CA"),
        ...       ("X509v3 Subject Alternative Name", "DNS:a.test, IP Address:127.0.0.1"),
        ...       ("Start date", "Jan  1 00:00:00 2000 GMT"),
        ...       ("Expire date", "Jan  1 00:00:00 2100 GMT")]])
        >>> tls = info.record(now=datetime(2099, 12, 30, 12, tzinfo=UTC).timestamp())
        >>> tls["version"], tls["cipher"], tls["san"], tls["not_after"], tls["days_left"]
        ('TLSv1.3', 'TLS_AES_256_GCM_SHA384', ['a.test', '127.0.0.1'], '2100-01-01T00:00:00Z', 1)
        """
        version = cipher = None
        if line is not None:
            parts = line.decode("latin-1").strip().removeprefix("SSL connection using ")
            pieces = [p.strip() for p in parts.split(" / ")]
            version = pieces[0] or None
            cipher = pieces[1] if len(pieces) > 1 else None
        leaf = dict(certinfo[0]) if certinfo else {}
        not_before = _cert_time(leaf.get("Start date"))
        not_after = _cert_time(leaf.get("Expire date"))
        fields = {
            "version": version,
            "cipher": cipher,
            "subject": leaf.get("Subject"),
            "issuer": leaf.get("Issuer"),
            "san": _san_list(leaf.get("X509v3 Subject Alternative Name")) if leaf else None,
            "not_before": _iso(not_before),
            "not_after": _iso(not_after),
        }
        return cls(fields, not_after)

    @property
    def has_certificate(self) -> bool:
        return self._fields["subject"] is not None or self._not_after is not None

    def record(self, *, now: float | None = None) -> dict[str, Any]:
        """The ``tls`` object; ``days_left``: whole days until ``not_after`` (negative once
        expired)."""
        days_left = None
        if self._not_after is not None:
            seconds = self._not_after.timestamp() - (time.time() if now is None else now)
            days_left = math.floor(seconds / 86400)
        return {**self._fields, "days_left": days_left}
