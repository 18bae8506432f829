"""``--no-private``: refuse requests whose host resolves to a non-global address.

The fetcher asks :class:`AddressCheck` before every request it sends, redirects included,
whatever engine does the actual HTTP. The name is resolved once, off the event loop
(``getaddrinfo`` on lookup threads of its own), every address it resolves to is checked, and
the request is then sent to the checked address itself: the engine never resolves the name
again, so a DNS answer that changes between check and connect (DNS rebinding) cannot slip a
private address through.

Pinning costs something. Only the first resolved address is tried (no fallback to the next
one). libcurl keeps a pinned connection for its host name (``CURLOPT_CONNECT_TO``), so it is
reused as usual; through an httpx transport a pinned https connection could be reused for
another name on the same address (with the wrong TLS server name), so there pinned https
requests ask for ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from afetch._errors import Blocked
from afetch.engine.names import MAX_LOOKUPS

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Decides whether a request may go to ``(address, port)``.
AddressPolicy = Callable[[IPAddress, int], bool]
#: Resolves ``(host, port)`` to addresses, in the order to try them.
Resolver = Callable[[str, int], Awaitable[list[str]]]


def is_public(address: IPAddress, port: int) -> bool:
    """The default policy: only globally routable unicast addresses, and for an IPv6 address
    that carries an IPv4 one (mapped, compatible, NAT64, 6to4, Teredo), that one too.

    >>> is_public(ipaddress.ip_address("93.184.215.14"), 80)
    True
    >>> private = ("127.0.0.1", "169.254.169.254", "10.0.0.1", "64:ff9b::7f00:1", "::127.0.0.1")
    >>> [is_public(ipaddress.ip_address(a), 80) for a in private]
    [False, False, False, False, False]
    """
    return all(a.is_global and not a.is_multicast for a in _with_embedded(address))


def describe(address: IPAddress) -> str:
    """What kind of non-global address this is, for the error message."""
    for item in reversed(_with_embedded(address)):  # the embedded IPv4 address says more
        for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
            if getattr(item, f"is_{kind}"):
                return kind.replace("_", "-")
    return "non-global"


#: NAT64 prefixes whose last 32 bits are an IPv4 address: the well-known 64:ff9b::/96
#: (RFC 6052) and the local-use 64:ff9b:1::/48 (RFC 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _with_embedded(address: IPAddress) -> list[IPAddress]:
    """``address``, then the IPv4 addresses an IPv6 one embeds: a gateway or the host's own
    stack may deliver to those, so ``::ffff:127.0.0.1`` or ``2002:7f00:1::1`` must not pass
    where ``127.0.0.1`` would not."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    found: list[IPAddress] = [address]
    value = int(address)
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    elif value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed)
        found.append(ipaddress.IPv4Address(value))
    elif any(address in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class AddressCheck:
    """Resolves a host off the loop and checks every address; the address to connect to.

    System lookups run on a pool of ``lookups`` threads of the check's own (a run passes its
    ``-c``, at most 64): the loop's default pool has min(32, cores + 4) threads, 6 on two
    cores, and with DNS taking 20 ms a run at ``-c 500`` waited on it three times as long as
    libcurl's own resolver (docs/performance.md, "DNS at scale"). :meth:`close` ends the pool.

    >>> import asyncio
    >>> try:
    ...     asyncio.run(AddressCheck().pin("169.254.169.254", 80))
    ... except Exception as exc:
    ...     print(exc)
    169.254.169.254 is a link-local address (--no-private)
    """

    def __init__(
        self,
        *,
        policy: AddressPolicy = is_public,
        resolve: Resolver | None = None,
        lookups: int = 8,
    ) -> None:
        self._policy = policy
        self._resolve = resolve or self._resolve_on_pool
        self._lookups = max(1, min(lookups, MAX_LOOKUPS))
        self._pool: ThreadPoolExecutor | None = None

    async def _resolve_on_pool(self, host: str, port: int) -> list[str]:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor  # only a --no-private run pays

            self._pool = ThreadPoolExecutor(self._lookups, thread_name_prefix="afetch-resolve")
        lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        infos = await asyncio.get_running_loop().run_in_executor(self._pool, lookup)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def close(self) -> None:
        """Ends the lookup threads; a lookup still running ends on its own, unheard."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

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
