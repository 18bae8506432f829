"""afetch: fetch many URLs concurrently, one JSON record per URL.

>>> import asyncio, httpx, afetch
>>> mock = httpx.MockTransport(lambda request: httpx.Response(200))
>>> async def statuses(urls):
...     return [record.status async for record in afetch.fetch(urls, transport=mock)]
>>> asyncio.run(statuses(["http://127.0.0.1/a", "http://127.0.0.1/b"]))
[200, 200]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from afetch._record import FetchError, Record
from afetch._settings import Settings
from afetch._version import __version__

if TYPE_CHECKING:
    from afetch._errors import ERROR_TYPES
    from afetch._scheduler import fetch

__all__ = ["ERROR_TYPES", "FetchError", "Record", "Settings", "__version__", "fetch"]


def __getattr__(name: str) -> Any:
    # httpx (and what the core pulls in) costs ~100 ms to import; `afetch --version` and
    # `import afetch` for a Record need none of it, so the core loads on first use.
    if name == "fetch":
        from afetch._scheduler import fetch

        return fetch
    if name == "ERROR_TYPES":
        from afetch._errors import ERROR_TYPES

        return ERROR_TYPES
    raise AttributeError(f"module 'afetch' has no attribute {name!r}")
