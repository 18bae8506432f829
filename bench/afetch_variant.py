"""Run the afetch CLI with another transport and/or event loop, to compare them in bench/run.py.

Usage: python bench/afetch_variant.py TRANSPORT+LOOP [afetch options...]

TRANSPORT: ``aiohttp`` (afetch's own AiohttpTransport), ``httpx-aiohttp`` (the httpx-aiohttp
package), ``httpcore`` (httpx.AsyncHTTPTransport, limits matched to -c). LOOP: ``asyncio`` or
``uvloop``. The default CLI is whatever afetch ships (aiohttp on asyncio's own loop: uvloop
measured no faster here, see README.md, Performance); this only swaps the seam.
"""

from __future__ import annotations

import sys

import httpx

import afetch._scheduler
import afetch.cli
from afetch._settings import Settings


def httpcore_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    return httpx.AsyncHTTPTransport(verify=settings.verify, limits=limits, retries=0)


def httpx_aiohttp_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    return AiohttpTransport(verify=settings.verify, limits=limits)


def own_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    from afetch._transport import AiohttpTransport

    return AiohttpTransport(verify=settings.verify, max_connections=settings.concurrency)


TRANSPORTS = {
    "aiohttp": own_transport,
    "httpx-aiohttp": httpx_aiohttp_transport,
    "httpcore": httpcore_transport,
}


def main() -> int:
    transport, _, loop = sys.argv[1].partition("+")
    afetch._scheduler.default_transport = TRANSPORTS[transport]
    if loop == "uvloop":
        import uvloop

        uvloop.install()  # asyncio.run in the CLI then runs on uvloop
    elif loop != "asyncio":
        sys.exit(f"afetch_variant: unknown loop {loop!r}")
    return afetch.cli.main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
