"""The transport seam: what actually speaks HTTP behind httpx's request and response models.

The core only calls ``transport.handle_async_request``; tests pass ``httpx.MockTransport`` (or a
respx router's handler wrapped in one) and speed work swaps the default here, never in the core.
"""

from __future__ import annotations

import httpx

from afetch._settings import Settings
from afetch._tls import tls_verify


def default_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The transport ``afetch.fetch`` uses when none is given."""
    limits = httpx.Limits(
        max_connections=settings.concurrency,
        max_keepalive_connections=settings.concurrency,
    )
    return httpx.AsyncHTTPTransport(
        verify=tls_verify(settings),
        http2=settings.http2,
        limits=limits,
        retries=0,
    )
