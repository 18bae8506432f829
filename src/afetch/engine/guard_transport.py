"""``--no-private`` for an httpx transport passed to ``afetch.fetch``: a wrapping transport.

afetch's own engines get the same check from :class:`afetch.engine.guard.AddressCheck` through the
fetcher; this module is apart so that a run on libcurl never imports httpx.
"""

from __future__ import annotations

import httpx

from afetch.engine.guard import AddressCheck, AddressPolicy, Resolver, is_public

_DEFAULT_PORTS = {"http": 80, "https": 443}


class PrivateAddressGuard(httpx.AsyncBaseTransport):
    """Wraps an httpx transport; requests to disallowed addresses fail with error type
    ``blocked``. (afetch's own engines get the same check from :class:`AddressCheck` through
    the fetcher; this wrapper serves a transport passed to ``afetch.fetch``.)

    >>> import asyncio, httpx
    >>> guard = PrivateAddressGuard(httpx.MockTransport(lambda request: httpx.Response(200)))
    >>> request = httpx.Request("GET", "http://169.254.169.254/latest/meta-data/")
    >>> try:
    ...     asyncio.run(guard.handle_async_request(request))
    ... except Exception as exc:
    ...     print(exc)
    169.254.169.254 is a link-local address (--no-private)
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        policy: AddressPolicy = is_public,
        resolve: Resolver | None = None,
    ) -> None:
        self._inner = inner
        self.check = AddressCheck(policy=policy, resolve=resolve)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 80)
        address = await self.check.pin(url.host, port)
        if address is None:
            return await self._inner.handle_async_request(request)
        return await self._inner.handle_async_request(_pinned(request, address))

    async def aclose(self) -> None:
        self.check.close()
        await self._inner.aclose()


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """The same request sent to ``address``; Host header and TLS server name keep the name."""
    headers = request.headers.copy()  # carries Host: the original name
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = request.url.host
        headers["Connection"] = "close"
    return httpx.Request(
        request.method,
        request.url.copy_with(host=address),
        headers=headers,
        stream=request.stream,
        extensions=extensions,
    )
