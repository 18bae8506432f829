"""TLS verification settings: ``--insecure`` and ``--cacert``."""

from __future__ import annotations

import ssl

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
