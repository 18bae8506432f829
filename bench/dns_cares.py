"""A candidate resolver for bench/dns_scale.py: c-ares (pycares) on the running asyncio loop.

c-ares tells which UDP/TCP sockets it uses through its socket-state callback; they are watched
with the loop's add_reader/add_writer and readiness goes back through ``process_fd``, with one
loop timer for c-ares's retransmits and timeouts: no thread per lookup, no executor. It reads
/etc/resolv.conf (nameservers, ``options timeout: attempts:``) and /etc/hosts as glibc does.
Answers are kept for the run, each until its TTL runs out, and concurrent lookups of one name
share one query. At most MAX_ASKING lookups are out at once (the rest wait their turn): a
burst of thousands would overrun a resolver (dnsmasq forwards 150 at a time) and come back as
timeouts.
"""

from __future__ import annotations

import asyncio
import collections
import socket

import pycares

_BAD = pycares.ARES_SOCKET_BAD
#: c-ares failures that mean "no such name" (EAI_NONAME); the others are transient (EAI_AGAIN).
_NO_NAME = {pycares.errno.ARES_ENOTFOUND, pycares.errno.ARES_ENODATA}
MAX_ASKING = int(__import__("os").environ.get("CARES_MAX", 256))


class CaresResolver:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._channel = pycares.Channel(sock_state_cb=self._on_socket)
        self._watched: dict[int, tuple[bool, bool]] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: host -> (expires on the loop's clock, addresses)
        self._answers: dict[str, tuple[float, list[str]]] = {}
        self._asking: dict[str, asyncio.Future[list[str]]] = {}
        self._out = 0  # lookups sent to c-ares, not answered yet
        self._waiting: collections.deque[str] = collections.deque()
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> list[str]:
        cached = self._answers.get(host)
        if cached is not None and cached[0] > self._loop.time():
            return cached[1]
        future = self._asking.get(host)
        if future is None:
            future = self._loop.create_future()
            self._asking[host] = future
            self.lookups += 1
            if self._out < MAX_ASKING:
                self._ask(host)
            else:
                self._waiting.append(host)
        return await asyncio.shield(future)

    def _ask(self, host: str) -> None:
        self._out += 1
        self._channel.getaddrinfo(
            host,
            None,
            family=socket.AF_UNSPEC,
            type=socket.SOCK_STREAM,
            callback=lambda result, error: self._answered(host, result, error),
        )
        self._arm()

    def _answered(self, host: str, result: object, error: int | None) -> None:
        self._out -= 1
        if self._waiting:
            self._loop.call_soon(self._ask, self._waiting.popleft())  # not inside c-ares
        future = self._asking.pop(host, None)
        if future is None or future.done():
            return
        if error:
            code = socket.EAI_NONAME if error in _NO_NAME else socket.EAI_AGAIN
            future.set_exception(socket.gaierror(code, f"{host}: {pycares.errno.strerror(error)}"))
            return
        nodes = result.nodes  # type: ignore[attr-defined]
        addresses = list(
            dict.fromkeys(
                str(node.addr[0], "ascii") if isinstance(node.addr[0], bytes) else node.addr[0]
                for node in nodes
            )
        )
        ttl = min((node.ttl for node in nodes), default=0)
        if ttl > 0:
            self._answers[host] = (self._loop.time() + ttl, addresses)
        future.set_result(addresses)

    # c-ares' sockets on the loop

    def _on_socket(self, fd: int, readable: bool, writable: bool) -> None:
        loop = self._loop
        was_read, was_write = self._watched.pop(fd, (False, False))
        if was_read and not readable:
            loop.remove_reader(fd)
        if was_write and not writable:
            loop.remove_writer(fd)
        if readable and not was_read:
            loop.add_reader(fd, self._channel.process_fd, fd, _BAD)
        if writable and not was_write:
            loop.add_writer(fd, self._channel.process_fd, _BAD, fd)
        if readable or writable:
            self._watched[fd] = (readable, writable)

    def _arm(self) -> None:
        if self._timer is None:
            delay = self._channel.timeout(1.0)
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._channel.process_fd(_BAD, _BAD)
        if self._asking:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for fd in list(self._watched):
            self._on_socket(fd, False, False)
        self._channel.close()
