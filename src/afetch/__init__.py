"""afetch: fetch many URLs concurrently, one JSON record per URL.

>>> import asyncio, httpx, afetch
>>> mock = httpx.MockTransport(lambda request: httpx.Response(200))
>>> async def statuses(urls):
...     return [record.status async for record in afetch.fetch(urls, transport=mock)]
>>> asyncio.run(statuses(["http://127.0.0.1/a", "http://127.0.0.1/b"]))
[200, 200]
"""

from __future__ import annotations

import importlib

from afetch._version import __version__

# Not typing's: `afetch --version` loads nothing it does not need (typing and re, ~5 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from afetch._api import fetch
    from afetch._errors import ERROR_TYPES, FetchError
    from afetch._record import Record
    from afetch._settings import Settings
    from afetch._spec import RequestSpec

__all__ = ["ERROR_TYPES", "FetchError", "Record", "RequestSpec", "Settings", "__version__", "fetch"]

# Imported on first use: `python -m afetch` and the `afetch` script install their signal
# handlers before httpx and friends load (a few hundred ms in which Ctrl-C would otherwise print
# a KeyboardInterrupt traceback).
_EXPORTS = {
    "ERROR_TYPES": "afetch._errors",
    "FetchError": "afetch._errors",
    "Record": "afetch._record",
    "Settings": "afetch._settings",
    "RequestSpec": "afetch._spec",
    "fetch": "afetch._api",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'afetch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
