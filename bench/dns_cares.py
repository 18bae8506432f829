"""A candidate resolver for bench/dns_scale.py (issue 22): c-ares (pycares) on the asyncio loop.

Measured against libcurl's threaded resolver and the ``--no-private`` getaddrinfo path; not
adopted (bench/results/dns.md). c-ares tells which sockets it uses (its socket-state callback),
the loop watches them (``add_reader``) and readiness goes back through ``process_fd``, with one
loop timer for retransmits and timeouts: no thread per lookup. c-ares reads /etc/resolv.conf
and /etc/hosts as glibc does. Answers are kept until their TTL runs out, concurrent lookups of
one name share one query, and at most MAX_ASKING lookups are out at once (256 overflowed the
client socket's receive buffer at 5,000 names; 128 did not). Failures are socket.gaierror,
which afetch's records call ``dns``. afetch's engine used this very class at commit 726912f
(CURLOPT_RESOLVE with every address; --no-private checking through it).
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable, Sequence

import pycares

#: Told the addresses (in the order to try them) or the failure; never inside ``lookup``.
OnAnswer = Callable[[list[str] | None, BaseException | None], None]

MAX_ASKING = 128
#: Answers kept at most (about 200 bytes each); the oldest are dropped first.
MAX_ANSWERS = 50_000
#: The receive buffer asked for c-ares' sockets (the kernel caps it at net.core.rmem_max).
RECEIVE_BUFFER = 1 << 20
_BAD = pycares.ARES_SOCKET_BAD
#: c-ares failures that mean the name has no address (EAI_NONAME); others are EAI_AGAIN.
_NO_NAME = frozenset({pycares.errno.ARES_ENOTFOUND, pycares.errno.ARES_ENODATA})
#: What c-ares tells the lookups it drops when the channel closes: nobody waits for those.
_CLOSING = frozenset({pycares.errno.ARES_ECANCELLED, pycares.errno.ARES_EDESTRUCTION})


class Resolver:
    """Resolves host names with c-ares on the running loop.

    ``servers`` ("address" or "address:port") and ``timeout`` (seconds per try) / ``tries``
    replace what /etc/resolv.conf says (tests point it at their own server).
    """

    def __init__(
        self,
        *,
        servers: Sequence[str] | None = None,
        timeout: float | None = None,
        tries: int | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._channel = pycares.Channel(
            sock_state_cb=self._on_socket,
            servers=list(servers) if servers else None,
            timeout=timeout,
            tries=tries,
            socket_receive_buffer_size=RECEIVE_BUFFER,
        )
        #: fd -> (read, write) as watched on the loop.
        self._watched: dict[int, tuple[bool, bool]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        #: host -> (expiry on the clock, addresses).
        self._answers: dict[str, tuple[float, list[str]]] = {}
        #: host -> who waits for its lookup (asked or queued).
        self._waiting: dict[str, list[OnAnswer]] = {}
        self._queued: collections.deque[str] = collections.deque()
        self._out = 0
        self._closed = False
        #: Names asked of c-ares so far (tests and the bench count them).
        self.lookups = 0

    def cached(self, host: str) -> list[str] | None:
        """The addresses of ``host`` if an answer is still fresh."""
        answer = self._answers.get(host)
        if answer is None:
            return None
        if answer[0] <= self._loop.time():
            del self._answers[host]
            return None
        return answer[1]

    def lookup(self, host: str, on_answer: OnAnswer) -> None:
        """Resolve ``host``; ``on_answer`` is told later, on the loop."""
        waiters = self._waiting.get(host)
        if waiters is not None:  # already being looked up: share the answer
            waiters.append(on_answer)
            return
        self._waiting[host] = [on_answer]
        self.lookups += 1
        if self._out < MAX_ASKING:
            self._ask(host)
        else:
            self._queued.append(host)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` (the shape of :data:`afetch.engine.guard.Resolver`)."""
        found = self.cached(host)
        if found is not None:
            return found
        future: asyncio.Future[list[str]] = self._loop.create_future()

        def settle(addresses: list[str] | None, error: BaseException | None) -> None:
            if not future.done():
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(addresses or [])

        self.lookup(host, settle)
        return await future

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
        # Called by c-ares inside process_fd (or, once closed, from its shutdown thread).
        if self._closed or error in _CLOSING:
            return
        self._out -= 1
        if self._queued:
            self._ask(self._queued.popleft())
        addresses: list[str] | None = None
        failure: BaseException | None = None
        if error:
            code = socket.EAI_NONAME if error in _NO_NAME else socket.EAI_AGAIN
            failure = socket.gaierror(code, f"{host}: {pycares.errno.strerror(error)}")
        else:
            nodes = result.nodes  # type: ignore[attr-defined]
            addresses = list(dict.fromkeys(node.addr[0].decode() for node in nodes))
            ttl = min((node.ttl for node in nodes), default=0)
            if not addresses:
                failure = socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
            elif ttl > 0:  # /etc/hosts answers have none: asked again, cheaply
                answers = self._answers
                answers[host] = (self._loop.time() + ttl, addresses)
                if len(answers) > MAX_ANSWERS:
                    del answers[next(iter(answers))]
        # Told on a later turn: never from inside c-ares.
        self._loop.call_soon(self._tell, host, addresses, failure)

    def _tell(self, host: str, addresses: list[str] | None, failure: BaseException | None) -> None:
        for on_answer in self._waiting.pop(host, ()):
            on_answer(addresses, failure)

    # -- c-ares' sockets and timer on the loop ---------------------------------------------------

    def _on_socket(self, fd: int, readable: bool, writable: bool) -> None:
        if self._closed:  # c-ares closing its sockets, maybe from its shutdown thread
            return
        loop = self._loop
        was_read, was_write = self._watched.pop(fd, (False, False))
        if was_read and not readable:
            loop.remove_reader(fd)
        if was_write and not writable:
            loop.remove_writer(fd)
        if readable and not was_read:
            loop.add_reader(fd, self._process, fd, _BAD)
        if writable and not was_write:
            loop.add_writer(fd, self._process, _BAD, fd)
        if readable or writable:
            self._watched[fd] = (readable, writable)

    def _process(self, read_fd: int, write_fd: int) -> None:
        self._channel.process_fd(read_fd, write_fd)
        self._arm()

    def _arm(self) -> None:
        """The timer at c-ares' next timeout (at most a second away) while lookups are out."""
        if self._out == 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        due = self._loop.time() + self._channel.timeout(1.0)
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._process(_BAD, _BAD)

    def close(self) -> None:
        """Stop: nobody waiting is told anything more; c-ares' sockets leave the loop."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fd in list(self._watched):
            self._on_socket(fd, False, False)
        self._closed = True
        self._waiting.clear()
        self._queued.clear()
        self._channel.close()
