"""Host names looked up ahead: a run's coming hosts resolved on threads before their transfers.

libcurl's threaded resolver runs at most 20 lookups at once (``CURLMOPT_RESOLVE_THREADS_MAX``,
which PycURL 7.49 cannot raise): with DNS taking 20 ms, about a thousand names a second, and a
run over 10,000 names waited on it (docs/performance.md, "Names looked up ahead"). The run
tells the engine each URL's origin as it reads the URL, up to its look-ahead before the URL
starts (:meth:`NamesAhead.ask`); up to ``lookups`` threads of the run's own resolve it with
``getaddrinfo``, as libcurl's resolver does; the engine gives the addresses to the first
transfer to that origin (:meth:`NamesAhead.take`; libcurl: ``CURLOPT_RESOLVE``).

Nothing else changes: a name not resolved yet, or whose lookup failed, is resolved by the
engine as before (so its errors and timeouts read as they always did); IP literals and
``localhost`` names are not looked up; an answer is used for ``TTL`` seconds at most, libcurl's
own DNS cache time. Lookup threads are daemons: a run never waits for a slow lookup to end.

A transfer that starts while its host's lookup is under way waits for it (:meth:`NamesAhead.hold`),
a bounded time: at the start of a run over many names, its first ``-c`` transfers would otherwise
all queue on libcurl's 20 lookups at once (and at ``-c 10000``, time out there).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from queue import SimpleQueue

#: The most lookup threads, whatever ``-c`` (the --no-private check's bound too).
MAX_LOOKUPS = 64
#: Seconds an answer is used: libcurl's DNS cache time.
TTL = 60.0
#: Origins remembered (asked, or answered and not yet taken); the oldest go first beyond it.
MAX_ORIGINS = 50_000

#: When an origin not to look up was "asked": never again (now - inf < TTL).
_NEVER = float("inf")
#: An answer: (host, port, addresses in the order to try them).
Answer = tuple[str, int, list[str]]
#: Resolves (host, port) to addresses, blocking (run on a lookup thread).
Lookup = Callable[[str, int], list[str]]
#: Begins a held transfer: with its host's answer, or None (left to the engine's resolver).
Begin = Callable[[Any, "Answer | None"], None]


def system_lookup(host: str, port: int) -> list[str]:
    """``getaddrinfo``'s addresses for ``host``, for a stream socket, in its order; IPv6 ones
    only if this machine can make an IPv6 socket (libcurl's test, not ``AI_ADDRCONFIG``, which
    finds nothing where loopback is the only interface)."""
    infos = socket.getaddrinfo(host, port, _family(), socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.cache
def _family() -> int:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return socket.AF_INET
    return socket.AF_UNSPEC


def worth_asking(origin: str) -> bool:
    """Whether ``origin`` (``scheme://authority``, as the run groups URLs) names a host to look
    up: http or https, not an IP literal (a host ending in a digit or ``]``: no top-level domain
    is numeric), not ``localhost`` (libcurl answers it itself), and nothing odd in it.

    >>> [worth_asking(o) for o in ("https://a.test", "http://a.test:8080", "http://127.0.0.1:80")]
    [True, True, False]
    >>> [worth_asking(o) for o in ("http://[::1]:80", "http://x.localhost", "ftp://a.test")]
    [False, False, False]
    """
    if not origin.startswith(("http://", "https://")):
        return False
    authority, _, port = origin.rpartition(":")  # (the scheme's colon at least)
    if len(authority) < 6 or not port.isdigit():  # no port: the host runs to the end
        authority = origin
    last = authority[-1]
    if last.isdigit() or last in "].":
        return False
    host = authority[origin.find("//") + 2 :].lower()
    return not (host == "localhost" or host.endswith(".localhost") or "%" in host)


def _host_port(origin: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(origin)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or not host.isascii():  # IDNs: libcurl's own conversion, not Python's
        return None
    return host, port or (443 if parts.scheme == "https" else 80)


class NamesAhead:
    """The lookups of one engine. Loop side: :meth:`ask`, :meth:`take` and :meth:`hold`, on the
    loop only; lookup threads hand answers back through a deque (appends are thread-safe),
    which the loop drains when it takes one, so an answer costs the loop no wake-up unless a
    transfer is held for one.

    >>> import time
    >>> ahead = NamesAhead(lookups=2, time=time.monotonic, lookup=lambda h, p: ["192.0.2.7"])
    >>> ahead.ask("https://a.test")
    >>> for _ in range(200):
    ...     if ahead.answers:
    ...         break
    ...     time.sleep(0.01)
    >>> ahead.take("https://a.test"), ahead.take("https://a.test")
    (('a.test', 443, ['192.0.2.7']), None)
    >>> ahead.close()
    """

    __slots__ = (
        "_asked",
        "_begin",
        "_held",
        "_in_flight",
        "_lookup",
        "_loop",
        "_max",
        "_queue",
        "_ready",
        "_threads",
        "_time",
        "_waking",
        "answers",
        "looking",
    )

    def __init__(
        self,
        *,
        lookups: int,
        time: Callable[[], float],
        lookup: Lookup | None = None,
        begin: Begin | None = None,
    ) -> None:
        self._max = max(1, min(lookups, MAX_LOOKUPS))
        self._time = time
        self._lookup = lookup or system_lookup
        self._begin = begin
        #: The loop of the first hold (the engine's), woken from lookup threads for held ones.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waking = False
        #: Origins whose lookup was queued and has not come back (answered or failed).
        self._in_flight: set[str] = set()
        #: origin → the transfers held for its lookup, each with its timer (see hold).
        self._held: dict[str, dict[Any, asyncio.TimerHandle]] = {}
        self._threads = 0
        #: A lookup was asked for (until then, transfers have nothing to take or wait for).
        self.looking = False
        #: Lookups to make; made with the first (queue is loaded then: a run of IP literals
        #: never loads it).
        self._queue: SimpleQueue[tuple[str, float] | None] | None = None
        #: origin → when it was asked (its answer is good until TTL after that).
        self._asked: dict[str, float] = {}
        #: origin → (answer, when asked): answered, not yet taken.
        self._ready: dict[str, tuple[Answer, float]] = {}
        #: (origin, answer or None if it failed, when asked), appended by the lookup threads.
        self.answers: deque[tuple[str, Answer | None, float]] = deque()

    def ask(self, origin: str) -> None:
        """Look up ``origin``'s host ahead, unless it was asked less than TTL ago or is not a
        name to look up (cheap: called for every URL read)."""
        asked = self._asked.get(origin)
        if asked is _NEVER:  # an IP literal, say: judged once, no clock read again
            return
        if asked is None and not worth_asking(origin):
            self._remember(self._asked, origin, _NEVER)
            return
        now = self._time()
        if asked is not None and now - asked < TTL:
            return
        self._remember(self._asked, origin, now)
        self.looking = True
        self._in_flight.add(origin)
        if self._queue is None:
            from queue import SimpleQueue

            self._queue = SimpleQueue()
        self._queue.put((origin, now))
        if self._threads < self._max:
            self._threads += 1
            threading.Thread(target=self._work, name="afetch-names", daemon=True).start()

    def take(self, origin: str) -> Answer | None:
        """The answer for ``origin`` if one came and was not taken yet, and is still fresh."""
        if self.answers:
            self._settle()
        entry = self._ready.pop(origin, None)
        if entry is None or self._time() - entry[1] >= TTL:
            return None
        return entry[0]

    @staticmethod
    def _remember(table: dict[str, object], origin: str, value: object) -> None:
        table.pop(origin, None)  # re-inserted at the end: the oldest stay first
        table[origin] = value
        if len(table) > MAX_ORIGINS:
            del table[next(iter(table))]

    def hold(self, origin: str, transfer: object, at_most: float) -> bool:
        """Keep ``transfer`` until ``origin``'s lookup under way comes back, or for ``at_most``
        seconds, then ``begin(transfer, answer or None)`` on the loop (from in here, if the
        answer has just come). False: no lookup of ``origin`` is under way (begin it now)."""
        if origin not in self._in_flight:
            return False
        loop = self._loop
        if loop is None:
            self._loop = loop = asyncio.get_running_loop()
        held = self._held.setdefault(origin, {})
        held[transfer] = loop.call_later(at_most, self._give_up, origin, transfer)
        if self.answers:  # came back while this one was held: no thread saw it held
            self._settle()
        return True

    def drop(self, origin: str, transfer: object) -> None:
        """``transfer`` was held and is abandoned."""
        held = self._held.get(origin)
        if held is not None and (timer := held.pop(transfer, None)) is not None:
            timer.cancel()
            if not held:
                del self._held[origin]

    def _give_up(self, origin: str, transfer: object) -> None:
        held = self._held.get(origin)
        if held is not None and held.pop(transfer, None) is not None:
            if not held:
                del self._held[origin]
            assert self._begin is not None
            self._begin(transfer, None)

    def _woken(self) -> None:
        self._waking = False
        self._settle()

    def _settle(self) -> None:
        """Take the lookups that came back: answers kept for take(), held transfers begun."""
        answers, held, in_flight = self.answers, self._held, self._in_flight
        while answers:
            origin, answer, asked = answers.popleft()
            in_flight.discard(origin)
            if answer is not None:
                self._remember(self._ready, origin, (answer, asked))
            waiting = held.pop(origin, None)
            if waiting:
                assert self._begin is not None
                for transfer, timer in waiting.items():
                    timer.cancel()
                    self._begin(transfer, answer)
                if answer is not None:
                    self._ready.pop(origin, None)  # given to the transfers just begun

    def close(self) -> None:
        """Drops the lookups not begun and lets the threads end (each after the lookup it is
        in, unwaited)."""
        queue = self._queue
        if queue is None:
            return
        from queue import Empty

        with contextlib.suppress(Empty):  # a thread may take the last one meanwhile
            while True:
                queue.get_nowait()
        for _ in range(self._threads):
            queue.put(None)
        self._threads = 0

    def _work(self) -> None:
        queue, lookup, answers = self._queue, self._lookup, self.answers
        assert queue is not None  # made before the first thread
        while (item := queue.get()) is not None:
            origin, asked = item
            answer = None  # failed: the engine resolves it itself, and says why it fails
            where = _host_port(origin)
            if where is not None:
                try:
                    addresses = lookup(*where)
                except (OSError, UnicodeError, ValueError):
                    addresses = []
                if addresses:
                    answer = (where[0], where[1], addresses)
            answers.append((origin, answer, asked))
            # Appended before looking: a hold made after this look sees the answer itself.
            if self._held and not self._waking and self._loop is not None:
                self._waking = True
                try:
                    self._loop.call_soon_threadsafe(self._woken)
                except RuntimeError:  # the loop is closed: the run is over
                    return
