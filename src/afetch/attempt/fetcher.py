"""Fetching one URL: what a run's requests look like, and the entry to an attempt at one.

A :class:`Fetcher` shapes each request from the run's options (method, body, headers) and starts
an :class:`afetch.attempt.machine.Attempt` for it: redirects, the body, the cache, and turning
every outcome into a record happen there, once, on the engine's callbacks.
:meth:`Fetcher.start` tells the end through a callback; :meth:`Fetcher.attempt` is a future
around it. The engine behind it (libcurl by default) is reached only through
:mod:`afetch.engine.base`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from afetch._record import FetchError, Record
from afetch._redact import header_secrets, proxy_secrets
from afetch._settings import Settings
from afetch._spec import JSON, RequestSpec, request_key
from afetch._timestamps import now_iso
from afetch._url import Target
from afetch.attempt.machine import Attempt, Shape
from afetch.attempt.outcome import ServerHints
from afetch.attempt.plan import Plan, secrets_for
from afetch.attempt.redirect import Headers
from afetch.engine.base import Engine

if TYPE_CHECKING:
    from afetch._clock import Clock
    from afetch.engine.guard import AddressCheck

# What a body's kind adds (curl's -d and --json); -H or a request object's headers win.
_BODY_HEADERS = {
    "form": (("Content-Type", "application/x-www-form-urlencoded"),),
    JSON: (("Accept", "application/json"), ("Content-Type", "application/json")),
}

T = TypeVar("T")
#: Told an attempt's end: the caller's token, the record and the last head's pacing hints.
Done = Callable[[T, Record, "ServerHints | None"], None]


def base_headers(settings: Settings, body_kind: str | None = None) -> Headers:
    """Request headers shared by every request of a run (with a body of ``body_kind``), built
    once; ``-H`` replaces a default of the same name. Accept-Encoding is the engine's to set
    (it decodes what it asks for)."""
    given = {name.lower() for name, _ in settings.headers}
    defaults = dict((("User-Agent", settings.user_agent), ("Accept", "*/*")))
    if body_kind is not None:
        defaults.update(_BODY_HEADERS[body_kind])
    return (
        *((name, value) for name, value in defaults.items() if name.lower() not in given),
        *settings.headers,
    )


class Fetcher:
    """Fetches single URLs through one engine; never raises for per-URL trouble.

    >>> import asyncio, httpx
    >>> from afetch.engine.httpx_adapter import HttpxEngine
    >>> mock = httpx.MockTransport(lambda request: httpx.Response(204))
    >>> async def one():
    ...     fetcher = Fetcher(HttpxEngine(mock, Settings()), Settings())
    ...     return (await fetcher.attempt("http://127.0.0.1/"))[0]
    >>> record = asyncio.run(one())
    >>> record.status, record.ok
    (204, True)
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        address_check: AddressCheck | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._headers_for = {kind: base_headers(settings, kind) for kind in (None, "form", JSON)}
        # Plain URL lines all share one shape, built once: the hot path stays as it was.
        self._plain = self._shape(None, None, "form", ())
        #: With -X/-d/--json every record says its method; otherwise only request objects do.
        self._say_method = settings.method is not None or settings.body is not None
        self._plain_method = self._plain[0] if self._say_method else None
        # Longest first: a secret inside a longer one must not leave the rest of it showing.
        secrets = {*header_secrets(settings.headers), *proxy_secrets(settings.proxy)}
        self._secrets = tuple(sorted(secrets, key=len, reverse=True))
        # Optional parts (--cache, --include); None keeps the default path untouched.
        cache = None
        if settings.cache_dir is not None:
            # Imported for --cache only: a run without it never loads sqlite3.
            from afetch.cache import cache_for

            cache = cache_for(settings.cache_dir)
        wanted = None
        if settings.include:
            from afetch.attempt.include import IncludePlan

            wanted = IncludePlan(settings.include, body_limit=settings.body_limit)
        self._plan = Plan(
            engine,
            follow=settings.follow_redirects,
            max_redirects=settings.max_redirects,
            timeout=settings.timeout,
            secrets=self._secrets,
            address_check=address_check,
            cache=cache,
            wanted=wanted,
            keep_bodies=settings.save_dir is not None or settings.hash_bodies,
            save_dir=settings.save_dir,
            clock=clock,
            rate_limits=settings.rate_limit_headers,
        )
        if wanted is not None and wanted.canary:
            # --include soft404 only; once the plan is whole: the canaries' plan is a copy of it.
            from afetch.attempt.canary import Canaries

            self._plan.canaries = Canaries(self._plan, wanted.body_limit)
        #: --cache: told of each URL the scheduler reads ahead (see BatchedCache.prefetch).
        self.prefetch = (
            None if cache is None or self._plain[0] not in ("GET", "HEAD") else (cache.prefetch)
        )
        #: Told the origin of each URL the scheduler reads ahead: the engine looks its host up
        #: (not under --no-private, whose check resolves and pins each request's address).
        self.resolve_ahead = engine.resolve_ahead if address_check is None else None
        # An attempt that writes a file (--save-dir) or awaits a look-up (--no-private) is run
        # under attempt(): a cancelled run then cancels it, and its partial file is removed.
        self._counts = settings.save_dir is None and address_check is None
        #: What deadlines are times on: the run's clock (the engine's too), the loop's by default.
        self._clock = clock
        self._now: Callable[[], float] | None = None if clock is None else clock.time

    def start(
        self, item: str | RequestSpec, done: Done[T], token: T, target: Target | None = None
    ) -> Attempt:
        """Start an attempt at ``item`` (a URL or a request object; ``target``: its URL checked
        already, if it was); ``done(token, record, hints)`` is called on the event loop when it
        is over, never from in here. Returns the attempt (to :meth:`Attempt.cancel` it)."""
        if type(item) is str:
            attempt = Attempt(
                self._plan, item, self._plain, self._plain_method, done, token, target
            )
        else:
            shape = self._spec_shape(item)
            method = None if item.invalid is not None else shape[0]
            attempt = Attempt(self._plan, item.url, shape, method, done, token, target)
            attempt.spec = item
        now = self._now
        if now is None:
            now = self._now = asyncio.get_running_loop().time
        attempt.begin(now())
        return attempt

    async def attempt(
        self, item: str | RequestSpec, target: Target | None = None
    ) -> tuple[Record, ServerHints | None]:
        """One attempt at a URL (or a request object): its record and the last response head's
        pacing hints, if any. A future around :meth:`start`'s machine."""
        future: asyncio.Future[tuple[Record, ServerHints | None]] = (
            asyncio.get_running_loop().create_future()
        )
        machine = self.start(item, _settle, future, target)
        try:
            return await future
        except asyncio.CancelledError:
            machine.cancel()  # the transfer let go, a partial file removed
            raise

    def pace_extra(self, pace: Callable[[str], float]) -> None:
        """Requests the fetcher adds of its own (``--include soft404``'s canaries, one per host)
        are told to ``pace(url)``, which counts them in the scheduler's pacing and says how many
        seconds each must wait for its turn."""
        canaries = getattr(self._plan, "canaries", None)
        if canaries is not None:
            canaries.pace = pace

    @property
    def counts(self) -> bool:
        """Whether the scheduler may run attempts on :meth:`start` alone (else it awaits
        :meth:`attempt`, whose cancellation cleans up what a run stopped midway leaves)."""
        return self._counts

    def unattempted(self, item: str | RequestSpec, error: FetchError) -> Record:
        """The record of a request never tried (its host was given up on)."""
        if type(item) is str:
            method = self._plain[0] if self._say_method else None
            return Record(url=item, error=error, attempts=0, started_at=now_iso(), method=method)
        method = None if item.invalid is not None else self._spec_shape(item)[0]
        return Record(
            url=item.url,
            error=error,
            attempts=0,
            started_at=now_iso(),
            method=method,
            meta=item.meta,
            key=request_key(item),
        )

    def _shape(self, method: str | None, body: bytes | None, kind: str, headers: Headers) -> Shape:
        """Method, body and headers of a request: the arguments are a request object's
        (None, None, "form", () for a plain line); the run's options fill in what they leave out."""
        settings = self._settings
        if body is None:
            body, kind = settings.body, settings.body_kind
        method = method or settings.method or ("POST" if body is not None else "GET")
        if method == "HEAD":
            body = None  # a HEAD request has no body, whatever -d says
        base = self._headers_for[kind if body is not None else None]
        if headers:  # a request object's headers replace the run's of the same name
            names = {name.lower() for name, _ in headers}
            base = (*(pair for pair in base if pair[0].lower() not in names), *headers)
        return method, body, base

    def _spec_shape(self, spec: RequestSpec) -> Shape:
        return self._shape(spec.method, spec.body, spec.body_kind, spec.headers)

    def _secrets_for(self, url: str, spec: RequestSpec | None = None) -> tuple[str, ...]:
        """What an error message about ``url`` must not show (see
        :func:`afetch.attempt.machine.secrets_for`)."""
        return secrets_for(self._secrets, url, spec)


def _settle(
    future: asyncio.Future[tuple[Record, ServerHints | None]],
    record: Record,
    hints: ServerHints | None,
) -> None:
    if not future.done():
        future.set_result((record, hints))
