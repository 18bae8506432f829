"""``afetch --demo``: a self-contained run against a loopback server, no internet needed."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

from afetch._loopback import LoopbackServer

#: The demo's --timeout unless one is given: its hanging URLs end in seconds, not minutes.
DEMO_TIMEOUT = 2.0

# (path, how many): mostly healthy URLs, plus every kind of trouble a real list meets.
_MIX = (
    ("/ok?size=2048", 200),
    ("/sleep/{slow}", 30),
    ("/redirect/2", 20),
    ("/status/404", 15),
    ("/status/500", 10),
    ("/truncate", 8),
    ("/reset", 7),
    ("/hang", 5),
    ("not a url {i}", 5),
)


def demo_urls(server: LoopbackServer, *, seed: int = 7) -> list[str]:
    """A few hundred URLs on ``server``, shuffled the same way every time."""
    rng = random.Random(seed)
    urls = []
    for path, count in _MIX:
        for i in range(count):
            filled = path.format(slow=rng.randrange(200, 1500, 100), i=i)
            urls.append(filled if not filled.startswith("/") else server.url(filled))
    rng.shuffle(urls)
    return urls


def demo_source(server: LoopbackServer) -> tuple[Callable[[], AsyncIterator[str]], int]:
    """The demo's URL source for ``_app.run`` and how many URLs it yields."""
    urls = demo_urls(server)

    async def source() -> AsyncIterator[str]:
        for url in urls:
            yield url

    return source, len(urls)
