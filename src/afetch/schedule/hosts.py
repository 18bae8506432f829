"""Per-host bookkeeping for politeness: slots in use, pacing, and consecutive connection failures.

A host is scheme + host + port, as curl and Scrapy count it (``http://a`` and ``http://a:80`` are
one host). The scheduler owns the queues and the decisions; this module only keeps the state and
keeps it bounded: a host with nothing queued, running or sleeping is forgotten, except for a
bounded memory of hosts that recently failed.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from afetch._errors import ErrorTrait, ErrorType, error_types_with
from afetch._record import FetchError
from afetch._settings import Settings
from afetch._url import Target, plain_target
from afetch.schedule.autolimit import AutoLimit

if TYPE_CHECKING:
    # Only --rate-limit-headers reads a quota (afetch.schedule.pacing): a plain run loads none.
    from afetch.schedule.ratelimit import Quota

HostKey = tuple[str, str, int]

#: Error types that say "this host did not talk HTTP with us at all"; K of them in a row mark it
#: unreachable (``ErrorTrait.CONNECTION_FAILURE``; afetch._errors.ErrorType says which and why).
CONNECTION_FAILURES = error_types_with(ErrorTrait.CONNECTION_FAILURE)
#: How many failing-but-idle hosts are remembered; beyond it the oldest is forgotten and, if met
#: again, probed afresh (K more failures). Bounds memory on lists of millions of dead hosts.
FAILURE_MEMORY = 10_000
#: As many idle hosts' learned ``--per-host auto`` limits are remembered, for the same reason.
LIMIT_MEMORY = 10_000
#: Seconds until the reset when a server says how many requests remain but not when they renew.
UNSAID_RESET = 1.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The usual URL's scheme, host and port ("scheme://host[:port]" and then /, ?, # or the end;
#: no user, no brackets, no blanks, no %; an ASCII URL): read by one match, as urlsplit reads
#: them. Anything else goes through urlsplit. (A class of all non-ASCII instead of the ASCII
#: test cost ~30M instructions to compile.)
_PLAIN_AUTHORITY = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#@\[\]:%\x00-\x20\x7f]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)"
)


def host_key(url: str) -> HostKey | None:
    """The politeness key of ``url``, or None if it has no usable host (it will fail anyway).

    >>> host_key("http://Example.test/a") == host_key("http://example.test:80/b")
    True
    >>> host_key("https://example.test/"), host_key("not a url")
    (('https', 'example.test', 443), None)
    """
    # A key only has to group URLs; whether a URL is valid is the fetcher's business (it
    # reports invalid_url). One regular expression for the usual URL (a new host per URL on
    # lists of many hosts: urlsplit was ~10% of the run's CPU there), urlsplit for the rest.
    plain = _PLAIN_AUTHORITY.match(url) if url.isascii() else None
    if plain is not None:
        scheme, host, digits = plain.groups()
        scheme = scheme.lower()
        port = int(digits) if digits else _DEFAULT_PORTS.get(scheme)
        if port is not None and 0 < port <= 65535:
            return (scheme, host.lower(), port)
    return _split_host_key(url)


def locate(url: str) -> tuple[HostKey | None, Target | None]:
    """:func:`host_key` of ``url`` and, for the usual URL, its checked :class:`Target`: one
    parse for both (the attempt takes the target; lists of many hosts parsed each URL twice).

    >>> key, target = locate("http://a.test:8080/x")
    >>> key, target.url
    (('http', 'a.test', 8080), 'http://a.test:8080/x')
    >>> locate("HTTP://A.test/")  # not the usual URL: the key alone
    (('http', 'a.test', 80), None)
    """
    target = plain_target(url)
    # A bracketed host (the usual URL's only "[") is read by urlsplit, the key's reading, which
    # rejects an address that the target's pattern lets by ("[1.2]"): the key alone, as always.
    if target is not None and "[" not in url:
        return target.origin, target
    return host_key(url), None


def _split_host_key(url: str) -> HostKey | None:
    """:func:`host_key` by urlsplit, for every URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port out of range or not a number
        return None
    host = parts.hostname
    if not host or port is None:
        return None
    return (scheme, host, port)


class Pacer:
    """Spaces events at least ``1/rate`` seconds apart: no bursts, R per second at most; and,
    told what a server allows (:meth:`heard`), starts no more than that before its reset.

    >>> pacer = Pacer(rate=4.0)
    >>> pacer.take(now=10.0); pacer.take(now=10.0); pacer.next_at
    10.5
    >>> from afetch.schedule.ratelimit import Quota
    >>> server = Pacer(rate=None)
    >>> server.heard(Quota(remaining=1, reset=30.0), now=0.0, in_flight=0)
    >>> server.take(now=1.0); server.next_at  # the one allowed start: then wait for the reset
    30.0
    """

    __slots__ = ("allowance", "epoch", "interval", "limit", "next_at", "reset_at", "window")

    def __init__(self, *, rate: float | None, probe: bool = False) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0
        #: Starts the server still allows before ``reset_at``; None: it said nothing (no bound).
        #: ``probe``: one request first, whose answer says what the server allows.
        self.allowance: int | None = 1 if probe else None
        #: math.inf: until the answer to the one request out (a probe).
        self.reset_at = math.inf if probe else 0.0
        #: The server's policy, when it gave one: ``limit`` requests per ``window`` seconds.
        self.limit: int | None = None
        self.window: float | None = None
        #: Windows begun so far: an answer to a request started in an earlier one is stale
        #: (about a window gone), and must not open the current one.
        self.epoch = 0

    def take(self, *, now: float, in_flight: int = 0) -> None:
        """Record one start at ``now`` (or at the reserved time, if that is later), with
        ``in_flight`` other requests out to this host."""
        self.next_at = max(now, self.next_at) + self.interval
        allowance = self.allowance
        if allowance is None:
            return
        if allowance <= 0:
            self.epoch += 1
            # Past the reset (next_at held starts until then): a new window. Its quota if the
            # policy is known (less the requests still out: the server may count them in it),
            # else one request, whose answer says what the new window allows.
            if self.limit is not None and self.window is not None and in_flight < self.limit:
                allowance = self.limit - in_flight
                while self.reset_at <= now:
                    self.reset_at += self.window
            else:
                allowance, self.reset_at = 1, math.inf
        self.allowance = allowance - 1
        if self.allowance <= 0:
            self.next_at = max(self.next_at, self.reset_at)

    def heard(self, quota: Quota | None, *, now: float, in_flight: int, epoch: int = 0) -> None:
        """An answer came to a request started in window ``epoch``, stating ``quota`` (None:
        nothing), with ``in_flight`` other requests still out (the server may not have counted
        them yet: they are taken off)."""
        if epoch < self.epoch:
            return  # about a window gone: what the requests of this one hear counts
        if quota is not None and quota.limit is not None:
            self.limit = quota.limit
            if quota.window is not None:
                self.window = quota.window
        if quota is None or quota.remaining is None:
            if self.reset_at == math.inf:  # a probe that learnt nothing: no bound after all
                self.allowance, self.next_at = None, now
            return
        reset = quota.reset
        if reset is None:
            reset = self.window if self.window is not None else UNSAID_RESET
        reset_at, allowance = now + reset, quota.remaining - in_flight
        if self.allowance is not None and now < self.reset_at < math.inf:
            if reset_at <= self.reset_at + 1.0:
                # The same window, answers out of order: the fewest remaining holds.
                allowance = min(allowance, self.allowance)
            reset_at = max(reset_at, self.reset_at)
        self.allowance, self.reset_at = allowance, reset_at
        if self.next_at == math.inf:  # the probe's answer came
            self.next_at = now
        if allowance <= 0:
            self.next_at = max(self.next_at, reset_at)

    def holds(self, now: float) -> bool:
        """Whether forgetting this pacer now would lose a wait or what the server allows."""
        return self.next_at > now or (self.allowance is not None and self.reset_at > now)


class Host:
    """One host's queue and counters. ``limit`` None means no per-host bound."""

    __slots__ = (
        "auto",
        "down",
        "failures",
        "in_flight",
        "key",
        "limit",
        "on_ready_list",
        "pacer",
        "queue",
        "sleeping",
        "tracked",
        "wake_pending",
    )

    def __init__(  # HostTable.get passes all positionally: no keyword dict per new host
        self,
        key: HostKey | None,
        limit: int | None = None,
        rate: float | None = None,
        server_limits: bool = False,
        tracked: bool = False,
        failures: int = 0,
        down: bool = False,
        auto: AutoLimit | None = None,
    ) -> None:
        self.key = key
        #: ``--per-host auto``: the learned limit, copied into ``limit`` after each attempt.
        self.auto = auto
        self.limit = limit if auto is None else auto.limit
        self.pacer = Pacer(rate=rate, probe=True) if server_limits else None
        if rate and not server_limits:
            self.pacer = Pacer(rate=rate)
        self.queue: deque[Any] = deque()
        self.in_flight = 0
        #: Jobs of this host waiting on a retry timer (keep the host from being forgotten).
        self.sleeping = 0
        #: In the scheduler's ready line.
        self.on_ready_list = False
        #: A pacing wake-up is scheduled for this host.
        self.wake_pending = False
        self.tracked = tracked
        self.failures = failures
        self.down = down

    @property
    def saturated(self) -> bool:
        return self.limit is not None and self.in_flight >= self.limit and not self.down

    @property
    def idle(self) -> bool:
        return not (
            self.in_flight or self.queue or self.sleeping or self.on_ready_list or self.wake_pending
        )

    def note(self, error_type: str | None, *, max_errors: int) -> None:
        """Count one finished attempt towards (or reset) the consecutive-failure count."""
        if not self.tracked:
            return
        if error_type in CONNECTION_FAILURES:
            self.failures += 1
            if self.failures >= max_errors:
                self.down = True
        else:
            self.failures = 0


class BusiestHosts:
    """Filled at the end of a ``--per-host auto`` run for the summary: up to :data:`TOP` rows of
    (host, attempts, the limit it settled at), most attempts first.

    >>> table = HostTable(limit="auto", rate=None, max_errors=None, ceiling=8, now=lambda: 0.0)
    >>> host = table.get(host_key("http://[::1]:8080/"))
    >>> table.note(host, None, status=200, elapsed_ms=1.0)
    >>> busiest = BusiestHosts(); busiest.fill(table); busiest.rows
    [('http://[::1]:8080', 1, 2)]
    """

    TOP = 5

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int]] = []

    def fill(self, table: HostTable) -> None:
        self.rows = [
            (f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}", attempts, limit)
            for (scheme, host, port), attempts, limit in table.busiest(self.TOP)
        ]


class HostTable:
    """The hosts currently in play, created on demand and forgotten when idle.

    >>> table = HostTable(limit=2, rate=None, max_errors=None, now=lambda: 0.0)
    >>> a = table.get(host_key("http://127.0.0.1:1/x"))
    >>> a is table.get(host_key("http://127.0.0.1:1/y")), a.limit, len(table)
    (True, 2, 1)
    >>> table.release(a); len(table)
    0
    """

    def __init__(
        self,
        *,
        limit: int | Literal["auto"] | None,
        rate: float | None,
        max_errors: int | None,
        ceiling: int = 1,
        server_limits: bool = False,
        now: Callable[[], float],
    ) -> None:
        #: The run's clock, read only when a host's pacing or a sweep needs the time.
        self._now = now
        #: ``limit="auto"``: each host's limit adapts (schedule.autolimit), at most ``ceiling``.
        self._auto = limit == "auto"
        self._limit = None if limit == "auto" else limit
        self._ceiling = ceiling
        self._learned: OrderedDict[HostKey, AutoLimit] = OrderedDict()
        self._rate = rate
        #: ``--rate-limit-headers``: every host gets a pacer that heeds what it says.
        self._server_limits = server_limits
        self._max_errors = max_errors
        self._hosts: dict[HostKey, Host] = {}
        # URLs without a usable host fail in the fetcher; they share one unbounded pseudo-host.
        self._shared_host = Host(None)
        self._failures: OrderedDict[HostKey, tuple[int, bool]] = OrderedDict()
        self._sweep_at = 1024

    def __len__(self) -> int:
        return len(self._hosts)

    def get(self, key: HostKey | None) -> Host:
        """The host of ``key`` (:func:`host_key`, :func:`locate`); None: the shared pseudo-host."""
        if key is None:
            return self._shared_host
        host = self._hosts.get(key)
        if host is None:
            # Before the new host is in: it is idle until its URL is queued, and would go too.
            if len(self._hosts) >= self._sweep_at:
                self._sweep(self._now())
            failures, down = self._failures.pop(key, (0, False))
            auto = None
            if self._auto:
                auto = self._learned.pop(key, None) or AutoLimit(ceiling=self._ceiling)
            host = Host(
                key,
                self._limit,
                self._rate,
                self._server_limits,
                self._max_errors is not None,
                failures,
                down,
                auto,
            )
            self._hosts[key] = host
        return host

    def note(
        self,
        host: Host,
        error_type: str | None,
        *,
        status: int | None = None,
        elapsed_ms: float = 0.0,
        epoch: int = 0,
    ) -> None:
        """Account one finished attempt of ``host`` (started in ``epoch``, for ``auto``)."""
        if self._max_errors is not None:
            host.note(error_type, max_errors=self._max_errors)
        if host.auto is not None:
            host.auto.finished(
                status=status, error_type=error_type, elapsed_ms=elapsed_ms, epoch=epoch
            )
            # Lower than in flight: nothing is cancelled, new starts wait (``saturated``).
            host.limit = host.auto.limit

    def busiest(self, count: int) -> list[tuple[HostKey, int, int]]:
        """``--per-host auto``: (host, attempts, limit) of the ``count`` hosts with the most
        attempts, among the hosts in play and those remembered."""
        hosts = [(h.key, h.auto) for h in self._hosts.values() if h.auto is not None]
        hosts += list(self._learned.items())
        ranked = sorted(
            ((key, auto.requests, auto.limit) for key, auto in hosts if key is not None),
            key=lambda row: -row[1],
        )
        return ranked[:count]

    def release(self, host: Host) -> None:
        """Forget ``host`` if nothing refers to it any more and its pacing has elapsed."""
        # Host.idle, inlined: a property is a call from C, once per attempt here.
        if (
            host.key is None
            or host.in_flight
            or host.queue
            or host.sleeping
            or host.on_ready_list
            or host.wake_pending
        ):
            return
        if host.pacer is not None and host.pacer.holds(self._now()):
            return  # still spacing requests; a sweep forgets it later
        self._forget(host)

    def _forget(self, host: Host) -> None:
        assert host.key is not None
        del self._hosts[host.key]
        if host.auto is not None and host.auto.requests:
            self._learned[host.key] = host.auto
            if len(self._learned) > LIMIT_MEMORY:
                self._learned.popitem(last=False)
        if host.failures or host.down:
            self._failures[host.key] = (host.failures, host.down)
            if len(self._failures) > FAILURE_MEMORY:
                self._failures.popitem(last=False)

    def _sweep(self, now: float) -> None:
        # Hosts kept only for pacing pile up on lists of many hosts; drop the ones now past it.
        # Amortised O(1): the next sweep waits until the table has doubled again.
        stale = [
            h
            for h in self._hosts.values()
            if h.idle and (h.pacer is None or not h.pacer.holds(now))
        ]
        for host in stale:
            self._forget(host)
        self._sweep_at = max(1024, 2 * len(self._hosts))


def host_table(settings: Settings, now: Callable[[], float]) -> HostTable | None:
    """Per-host state, only when some option asks for it; ``now``: the run's clock."""
    polite = (settings.per_host, settings.host_rate, settings.max_host_errors)
    if all(option is None for option in polite) and not settings.rate_limit_headers:
        return None
    return HostTable(
        limit=settings.per_host,
        rate=settings.host_rate,
        max_errors=settings.max_host_errors,
        ceiling=settings.concurrency,
        server_limits=settings.rate_limit_headers,
        now=now,
    )


def not_tried(host: Host) -> FetchError:
    """The error of a URL not tried because ``host`` is given up (``--max-host-errors``)."""
    return FetchError(
        ErrorType.HOST_UNREACHABLE.value,
        f"not tried: {host.failures} consecutive connection failures to this host",
    )
