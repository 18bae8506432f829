"""afetch: fetch many URLs concurrently, one JSON record per URL.

>>> import asyncio, httpx, afetch
>>> mock = httpx.MockTransport(lambda request: httpx.Response(200))
>>> async def statuses(urls):
...     return [record.status async for record in afetch.fetch(urls, transport=mock)]
>>> asyncio.run(statuses(["http://127.0.0.1/a", "http://127.0.0.1/b"]))
[200, 200]
"""

from afetch._errors import ERROR_TYPES
from afetch._record import FetchError, Record
from afetch._scheduler import fetch
from afetch._settings import Settings
from afetch._version import __version__

__all__ = ["ERROR_TYPES", "FetchError", "Record", "Settings", "__version__", "fetch"]
