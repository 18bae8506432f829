"""``--no-private``: refuse requests whose host resolves to a non-global address.

The fetcher asks :class:`AddressCheck` before every request it sends, redirects included,
whatever engine does the actual HTTP. The name is resolved once, off the event loop
(``loop.getaddrinfo``), every address it resolves to is checked, and the request is then sent to
the checked address itself: the engine never resolves the name again, so a DNS answer
that changes between check and connect (DNS rebinding) cannot slip a private address through.

Pinning costs something. Only the first resolved address is tried (no fallback to the next
one). libcurl keeps a pinned connection for its host name (``CURLOPT_CONNECT_TO``), so it is
reused as usual; through an httpx transport a pinned https connection could be reused for
another name on the same address (with the wrong TLS server name), so there pinned https
requests ask for ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

import httpx

from afetch._errors import Blocked

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Decides whether a request may go to ``(address, port)``.
AddressPolicy = Callable[[IPAddress, int], bool]
#: Resolves ``(host, port)`` to addresses, in the order to try them.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_public(address: IPAddress, port: int) -> bool:
    """The default policy: only globally routable unicast addresses.

    >>> is_public(ipaddress.ip_address("93.184.215.14"), 80)
    True
    >>> private = ("127.0.0.1", "169.254.169.254", "10.0.0.1")
    >>> [is_public(ipaddress.ip_address(a), 80) for a in private]
    [False, False, False]
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def describe(address: IPAddress) -> str:
    """What kind of non-global address this is, for the error message."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "non-global"


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve with the system resolver in the loop's thread pool; never blocks the loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class AddressCheck:
    """Resolves a host off the loop and checks every address; the address to connect to.

    >>> import asyncio
    >>> try:
    ...     asyncio.run(AddressCheck().pin("169.254.169.254", 80))
    ... except Exception as exc:
    ...     print(exc)
    169.254.169.254 is a link-local address (--no-private)
    """

    def __init__(self, *, policy: AddressPolicy = is_public, resolve: Resolver = system_resolve):
        self._policy = policy
        self._resolve = resolve

    async def pin(self, host: str, port: int) -> str | None:
        """The checked address to send the request to; None when ``host`` is an IP literal
        (nothing to pin). Raises :class:`Blocked` when any address is not allowed."""
        literal = _literal(host)
        addresses = [host] if literal is not None else await self._resolve(host, port)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        for raw in addresses:
            address = ipaddress.ip_address(raw)
            if not self._policy(address, port):
                shown = host if literal is not None else f"{host} resolves to {address}, which"
                raise Blocked(f"{shown} is a {describe(address)} address (--no-private)")
        return None if literal is not None else addresses[0]


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
        resolve: Resolver = system_resolve,
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
