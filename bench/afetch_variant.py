"""Run the afetch CLI with another transport and/or event loop, to compare them in bench/run.py.

Usage: python bench/afetch_variant.py TRANSPORT+LOOP [afetch options...]

ENGINE: ``curl`` (afetch's default, libcurl), or an httpx transport behind the httpx adapter:
``httpx-aiohttp`` (the httpx-aiohttp package), ``httpcore`` (httpx.AsyncHTTPTransport, limits
matched to -c). LOOP: ``asyncio`` or ``uvloop``. The CLI itself always runs libcurl on asyncio's
own loop (docs/performance.md); this only swaps the seam.
"""

from __future__ import annotations

import sys

import httpx

import afetch._api
import afetch.cli.command
from afetch._settings import Settings
from afetch.engine.httpx_adapter import HttpxEngine


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


TRANSPORTS = {
    "httpx-aiohttp": httpx_aiohttp_transport,
    "httpcore": httpcore_transport,
}


def main() -> int:
    engine, _, loop = sys.argv[1].partition("+")
    if engine != "curl":
        make = TRANSPORTS[engine]

        def open_engine(
            settings: Settings, transport: object = None, collect: object = None
        ) -> HttpxEngine:
            return HttpxEngine(make(settings), settings, owned=True)

        afetch._api.open_engine = open_engine  # type: ignore[assignment]
    if loop == "uvloop":
        import uvloop

        uvloop.install()  # asyncio.run in the CLI then runs on uvloop
    elif loop != "asyncio":
        sys.exit(f"afetch_variant: unknown loop {loop!r}")
    return afetch.cli.command.main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
