"""Which engine a run gets: libcurl, or the httpx adapter.

Above both engines and the seam they share (:mod:`afetch.engine.base`), so that the seam imports
no engine: only :mod:`afetch._api` opens one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from afetch._clock import Clock
    from afetch._settings import Settings
    from afetch.engine.base import Collect, Engine


def open_engine(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    collect: Collect | None = None,
    *,
    clock: Clock | None = None,
) -> Engine:
    """The engine for a run: ``transport`` behind the httpx adapter when given, else libcurl
    (or httpx's own transport where pycurl is not installed), collecting what ``collect`` says
    about each transfer (the adapter can collect nothing). Call inside the running loop.
    Request deadlines are times on ``clock`` (the loop's by default)."""
    # Windows' default (proactor) loop cannot watch sockets it did not open: no libcurl there.
    if transport is None and sys.platform != "win32":
        try:
            from afetch.engine.curl import CurlEngine
        except ImportError:  # pragma: no cover - no pycurl, or neither epoll nor kqueue
            pass
        else:
            return CurlEngine(settings, collect, clock=clock)
    from afetch.engine.httpx_adapter import HttpxEngine

    if transport is None:
        from afetch.engine.httpx_adapter import default_transport

        return HttpxEngine(default_transport(settings), settings, owned=True, clock=clock)
    return HttpxEngine(transport, settings, owned=False, clock=clock)
