"""Fetching one URL: redirects, the body, the cache, and turning every outcome into a record.

One attempt is a few named steps, as httpx's client has them: build the first request
(:meth:`Fetcher._first_request`), send it and follow redirects (:meth:`Fetcher._send_following`
with :func:`_redirect_request`), read the body (:meth:`Fetcher._read_body`), update the cache.
What is learnt on the way goes into an :class:`_Outcome`, which becomes the record whatever
happens. The engine behind it (libcurl by default) is reached only through
:mod:`afetch.engine.base`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import unquote

from afetch._errors import ErrorType, InvalidInput, TooManyRedirects, classify
from afetch._record import FetchError, Record, new_record
from afetch._redact import header_secrets, proxy_secrets
from afetch._settings import Settings
from afetch._spec import JSON, RequestSpec, request_key
from afetch._timestamps import now_iso
from afetch._url import Target, join, parse_url
from afetch.engine.base import BodySink, Engine, Request, Response, TransferInfo

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from afetch.attempt.include import BodyKeeper, Wanted
    from afetch.attempt.save import BodyConsumer
    from afetch.cache import BatchedCache, Validators
    from afetch.engine.guard import AddressCheck

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Where the scheduler may honour Retry-After when retrying (RFC 9110 section 10.2.3).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# Credentials must not follow a redirect to another origin (curl and httpx behave the same).
# Not Proxy-Authorization: it is the proxy's, which stays the same across redirects, and the
# engines never send it to a server (libcurl puts it in CURLOPT_PROXYHEADER; the httpx adapter
# drops it).
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie"})
# What a body's kind adds (curl's -d and --json); -H or a request object's headers win.
_BODY_HEADERS = {
    "form": (("Content-Type", "application/x-www-form-urlencoded"),),
    JSON: (("Accept", "application/json"), ("Content-Type", "application/json")),
}

T = TypeVar("T")


class ServerHints(NamedTuple):
    """What the last response head said about pacing, for the scheduler, which parses it
    (afetch.schedule.retry, afetch.schedule.ratelimit): the ``Retry-After`` of a 429 or 503,
    and with ``--rate-limit-headers`` the head's headers (its RateLimit fields)."""

    retry_after: str | None
    headers: Sequence[tuple[str, str]] | None = None


#: Told an attempt's end: the caller's token, the record and the last head's hints.
Done = Callable[[T, Record, "ServerHints | None"], None]
Count = Callable[..., None]

Headers = tuple[tuple[str, str], ...]
#: How a request is shaped: method, body, headers.
_Shape = tuple[str, bytes | None, Headers]


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
        self, engine: Engine, settings: Settings, *, address_check: AddressCheck | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._rate_limits = settings.rate_limit_headers
        self._headers_for = {kind: base_headers(settings, kind) for kind in (None, "form", JSON)}
        self._headers = self._headers_for[None]
        # Plain URL lines all share one shape, built once: the hot path stays as it was.
        self._plain = self._shape(None, None, "form", ())
        #: With -X/-d/--json every record says its method; otherwise only request objects do.
        self._say_method = settings.method is not None or settings.body is not None
        self._plain_method = self._plain[0] if self._say_method else None
        # Longest first: a secret inside a longer one must not leave the rest of it showing.
        secrets = {*header_secrets(settings.headers), *proxy_secrets(settings.proxy)}
        self._secrets = tuple(sorted(secrets, key=len, reverse=True))
        self._address_check = address_check
        # Optional hooks (--cache, --save-dir/--hash); None keeps the default path untouched.
        self._cache: BatchedCache | None = None
        if settings.cache_dir is not None:
            # Imported for --cache only: a run without it never loads sqlite3.
            from afetch.cache import UNKNOWN, Validators, cache_for

            self._cache = cache_for(settings.cache_dir)
            self._validators = Validators
            self._unknown = UNKNOWN  # a look-up the worker thread must answer
        self._keep_bodies = settings.save_dir is not None or settings.hash_bodies
        # The deadline covers the whole attempt: the engine can keep it alone when all the
        # attempt's waiting is on the engine (no body written to disk). A cache look-up is
        # a miss once the deadline has passed; cache stores are written behind.
        self._engine_deadline = (
            settings.timeout is not None
            and engine.enforces_deadline
            and settings.save_dir is None
            and address_check is None  # its DNS look-up is outside the engine's deadline
        )
        # --include: None for a run without it, so the default path does no extra work (and
        # does not even import afetch.attempt.include).
        self._wanted: Wanted | None = None
        if settings.include:
            from afetch.attempt.include import Wanted

            self._wanted = Wanted(settings.include, body_limit=settings.body_limit)
        # Plain fetches run on callbacks (no coroutine, task or future per request) when all
        # that is wanted is what a counted transfer tells (its body hashed, for --hash, as the
        # engine delivers it; cache look-ups answered through a callback), and no deadline
        # needs a timer here. --save-dir writes files off the loop: the coroutine path.
        count = getattr(engine, "count", None)
        plain = (
            settings.save_dir is None
            and self._wanted is None
            and address_check is None
            and (settings.timeout is None or self._engine_deadline)
        )
        self._count: Count | None = count if plain else None
        #: The engine is asked about the heads of these statuses only: redirects to follow.
        self._redirect_statuses = _REDIRECT_STATUSES if settings.follow_redirects else frozenset()
        self._loop_time: Callable[[], float] | None = None
        # What a plain line's attempt on callbacks does besides counting (see _CountedAttempt):
        # --cache for GET and HEAD (as _fetch), --hash of a 2xx body (as _body_consumer).
        method = self._plain[0]
        self._counted_cache = self._cache if method in ("GET", "HEAD") else None
        #: --cache: told of each URL the scheduler reads ahead (see BatchedCache.prefetch).
        self.prefetch = None if self._counted_cache is None else self._counted_cache.prefetch
        self._ask_for: frozenset[int] = self._redirect_statuses
        if settings.hash_bodies and method != "HEAD" and self._count is not None:
            from hashlib import sha256  # --hash only (OpenSSL, ~5 ms)

            self._sha256: Callable[[], Any] = sha256
            self._ask_for = self._redirect_statuses | frozenset(range(200, 300))

    async def attempt(self, item: str | RequestSpec) -> tuple[Record, ServerHints | None]:
        """One attempt at a URL (or a request object): its record and the last response's
        pacing hints, if any."""
        started_at = now_iso()
        t0 = time.perf_counter()
        outcome = _Outcome()
        if self._rate_limits:
            outcome.rate_limits = True
        error = None
        if type(item) is str:
            url, spec, shape = item, None, self._plain
            method = shape[0] if self._say_method else None
        else:
            spec = item
            url, shape = spec.url, self._spec_shape(spec)
            method = None if spec.invalid is not None else shape[0]
        timeout = self._settings.timeout
        try:
            if spec is not None and spec.invalid is not None:
                raise InvalidInput(spec.invalid)
            if self._engine_deadline:
                assert timeout is not None
                deadline = asyncio.get_running_loop().time() + timeout
                await self._fetch(url, shape, outcome, deadline=deadline)
            else:
                async with asyncio.timeout(timeout):
                    await self._fetch(url, shape, outcome)
        except TimeoutError:
            error = classify(TimeoutError(f"no complete response within {timeout}s"))
        except Exception as exc:  # every per-URL failure becomes a record
            error = classify(exc, self._secrets_for(url, spec))
        if outcome.kept is not None:
            await self._derive(outcome)
        return self._record(url, spec, method, outcome, error, t0, started_at), outcome.hints

    def _record(
        self,
        url: str,
        spec: RequestSpec | None,
        method: str | None,
        outcome: _Outcome,
        error: FetchError | None,
        t0: float,
        started_at: str,
    ) -> Record:
        # All the fields, in Record's order (new_record is Record(...) without its slow init).
        return new_record(
            url,
            outcome.final_url,
            outcome.status,
            error,
            round((time.perf_counter() - t0) * 1000, 3),
            outcome.bytes,
            outcome.content_type,
            outcome.http_version,
            outcome.redirects,
            1,  # attempts: the scheduler counts them
            started_at,
            outcome.not_modified,
            outcome.path,
            outcome.sha256,
            method,
            None if spec is None else spec.meta,
            None if spec is None else request_key(spec),
            None if self._wanted is None else self._extra_or_none(outcome),
        )

    # -- the callback path ------------------------------------------------------------------------

    def start(self, url: str, done: Done[T], token: T) -> bool:
        """Start an attempt at plain URL ``url`` on callbacks alone; ``done(token, record,
        hints)`` is called on the event loop when it is over, never from in here.

        False when this fetcher cannot: an engine without ``count``
        (:class:`afetch.engine.base.CountingEngine`), or options that keep the body or await
        something (--save-dir, --include, --no-private). Then use :meth:`attempt`, which gives
        the same record.
        """
        if self._count is None:
            return False
        attempt = _CountedAttempt(self, url, done, token)
        try:
            target = parse_url(url)
            timeout = self._settings.timeout
            deadline = None
            if timeout is not None:
                loop_time = self._loop_time
                if loop_time is None:
                    loop_time = self._loop_time = asyncio.get_running_loop().time
                deadline = loop_time() + timeout
            attempt._target, attempt._deadline = target, deadline
            cache = self._counted_cache
            if cache is not None:
                attempt.not_modified = False
                found = cache.lookup_now(url)
                if found is self._unknown:
                    cache.lookup_then(url, deadline, attempt._looked_up)
                    return True  # continued in _looked_up, on a later turn
                if found is not None:
                    attempt._use(found)
            attempt._send_first()
        except Exception as exc:
            # Never told from inside start(): the scheduler is in the middle of a pump.
            asyncio.get_running_loop().call_soon(attempt._end, exc)
        return True

    @property
    def counts(self) -> bool:
        """Whether :meth:`start` can be used (see there)."""
        return self._count is not None

    def _extra_or_none(self, outcome: _Outcome) -> dict[str, object] | None:
        # Whatever a server sends, one record per URL: an --include key that cannot be built
        # is left out (null) rather than ending the run.
        try:
            return self._extra(outcome)
        except Exception:
            return None

    async def _derive(self, outcome: _Outcome) -> None:
        """--include body/json/title: computed from the kept body, off the loop if it is large."""
        from afetch.attempt.include import derive

        assert self._wanted is not None
        try:
            outcome.derived = await derive(self._wanted, outcome.kept, outcome.content_type)
        except Exception:  # as _extra_or_none: the keys are null, the record stays
            outcome.kept = None

    def _extra(self, outcome: _Outcome) -> dict[str, object]:
        from afetch.attempt.include import build_extra

        assert self._wanted is not None
        final = outcome.final
        return build_extra(
            self._wanted,
            headers=None if final is None else final.headers,
            content_type=outcome.content_type,
            info=outcome.info,
            kept=outcome.kept,
            derived=outcome.derived,
        )

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

    def _shape(self, method: str | None, body: bytes | None, kind: str, headers: Headers) -> _Shape:
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

    def _spec_shape(self, spec: RequestSpec) -> _Shape:
        return self._shape(spec.method, spec.body, spec.body_kind, spec.headers)

    def _secrets_for(self, url: str, spec: RequestSpec | None = None) -> tuple[str, ...]:
        """What an error message about ``url`` must not show (classify masks them before it
        cuts the message): -H values, the values of a request object's headers and the URL's
        password."""
        secrets = self._secrets
        if spec is not None and spec.headers:
            found = {*header_secrets(spec.headers), *secrets}
            secrets = tuple(sorted(found, key=len, reverse=True))
        userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
        if userinfo:
            raw = userinfo.partition(":")[2]
            # The password both decoded and as typed (percent-encoded).
            secrets = (*(p for p in (unquote(raw), raw) if p), *secrets)
        return secrets

    # -- the steps of one attempt ---------------------------------------------------------------

    async def _fetch(
        self, raw_url: str, shape: _Shape, outcome: _Outcome, *, deadline: float | None = None
    ) -> None:
        target = parse_url(raw_url)
        method = shape[0]
        cached = None
        # Conditional requests are for reading a resource again, not for sending one.
        cache = self._cache if method in ("GET", "HEAD") else None
        if cache is not None:
            outcome.not_modified = False
            cached = await cache.lookup(raw_url, deadline)
        request = self._first_request(target, cached, shape, deadline)
        wanted = self._wanted
        try:
            response = await self._send_following(request, target, outcome)
        except Exception as exc:
            if wanted is not None and wanted.info:
                # A failed TLS handshake still tells what certificate the server showed.
                outcome.info = getattr(exc, "transfer_info", None)
            raise
        body = None
        try:
            if wanted is not None:
                outcome.final = response
                if wanted.body and method != "HEAD":
                    outcome.kept = wanted.keeper()
            body = self._body_consumer(raw_url, method, response)
            if method != "HEAD":
                await self._read_body(response, outcome, body)
            if cache is not None:
                await self._update_cache(raw_url, cached, response, outcome)
        finally:
            if body is not None:
                body.abort()  # no-op after finish(): removes a partial file
            if wanted is not None and wanted.info:
                outcome.info = response.transfer_info()  # read before the engine lets go
            await response.aclose()

    def _first_request(
        self, target: Target, cached: Validators | None, shape: _Shape, deadline: float | None
    ) -> Request:
        method, body, headers = shape
        if cached is not None:
            headers = (*headers, *cached.request_headers().items())
        headers = _with_credentials(headers, target)
        return Request(method, target.url, headers, body, deadline=deadline)

    def _send(self, request: Request, target: Target) -> Awaitable[Response]:
        if self._address_check is None:
            return self._engine.send(request)  # awaited by the caller: no coroutine between
        return self._send_pinned(request, target, self._address_check)

    async def _send_pinned(
        self, request: Request, target: Target, address_check: AddressCheck
    ) -> Response:
        _, host, port = target.origin
        request = request._replace(pin=await address_check.pin(host, port))
        return await self._engine.send(request)

    async def _send_following(
        self, request: Request, target: Target, outcome: _Outcome
    ) -> Response:
        """Send ``request``, following redirects as the settings allow; the final response."""
        settings = self._settings
        while True:
            outcome.final_url = target.shown
            response = await self._send(request, target)
            outcome.saw(response)
            if not settings.follow_redirects or response.status not in _REDIRECT_STATUSES:
                return response
            location = response.headers.get("location")
            if location is None:
                return response
            await response.aclose()
            if outcome.redirects >= settings.max_redirects:
                raise TooManyRedirects(f"stopped after {settings.max_redirects} redirects")
            request, target = _redirect_request(request, target, location, response.status)
            outcome.redirects += 1

    async def _read_body(
        self, response: Response, outcome: _Outcome, body: BodyConsumer | None
    ) -> None:
        # --max-size, a declared Content-Length included, is the engine's to enforce (libcurl's
        # write callback, the adapter's body_pieces): no second parse of the headers here.
        kept = outcome.kept
        if body is None and kept is None:
            try:
                await response.drain()
            finally:
                outcome.bytes = response.bytes_read
            return
        async for piece in response.pieces():
            outcome.bytes += len(piece)
            if kept is not None:
                kept.add(piece)  # the first --body-limit bytes; the rest is only counted
            if body is not None:
                await body.feed(piece)
        if body is not None:
            outcome.path, outcome.sha256 = await body.finish()

    def _body_consumer(self, raw_url: str, method: str, response: Response) -> BodyConsumer | None:
        """--save-dir/--hash: a consumer for a 2xx body, fed chunk by chunk (attempt/save.py)."""
        if not self._keep_bodies or method == "HEAD" or not 200 <= response.status < 300:
            return None
        from afetch.attempt.save import BodyConsumer  # --save-dir/--hash only (hashlib, secrets)

        return BodyConsumer(raw_url, self._settings.save_dir)

    async def _update_cache(
        self, raw_url: str, cached: Validators | None, response: Response, outcome: _Outcome
    ) -> None:
        assert self._cache is not None
        outcome.not_modified = response.status == 304 and cached is not None
        fresh = self._validators.to_keep(cached, response)
        if fresh != cached:
            self._cache.store(raw_url, fresh)  # written behind: nothing to wait for


def _redirect_request(
    request: Request, target: Target, location: str, status: int
) -> tuple[Request, Target]:
    """The request that follows a redirect to ``location`` (RFC 9110 section 15.4)."""
    next_target = join(target.shown, location)
    headers = request.headers
    if next_target.origin != target.origin:
        headers = tuple(
            (name, value) for name, value in headers if name.lower() not in _ORIGIN_BOUND_HEADERS
        )
    method, body = request.method, request.body
    # 303 turns anything but HEAD into a GET; 301 and 302 turn a POST into a GET, as browsers,
    # curl and httpx do. The body goes, and with it what described it. 307/308 keep both.
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        if body is not None:
            headers = tuple((name, value) for name, value in headers if not _is_body_header(name))
        method, body = "GET", None
    follow = Request(
        method,
        next_target.url,
        _with_credentials(headers, next_target),
        body,
        deadline=request.deadline,
    )
    return follow, next_target


def _is_body_header(name: str) -> bool:
    lower = name.lower()
    return lower == "content-type" or lower == "content-length"


def _with_credentials(headers: Headers, target: Target) -> Headers:
    """``user:password@`` in the URL becomes Basic auth for that URL's origin (as curl and wget
    do); an Authorization given with -H wins."""
    if target.authorization is None or any(n.lower() == "authorization" for n, _ in headers):
        return headers
    return (*headers, ("Authorization", target.authorization))


class _Outcome:
    """What is known so far about one attempt; becomes the record whatever happens.

    Class attributes are the defaults (no ``__init__``, one per attempt): an attempt sets only
    what it learns.
    """

    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    http_version: str | None = None
    redirects = 0
    bytes = 0
    hints: ServerHints | None = None
    #: Keep the heads' headers in ``hints`` (--rate-limit-headers); set by the Fetcher.
    rate_limits = False
    not_modified: bool | None = None  # set (False/True) only with --cache
    path: str | None = None
    sha256: str | None = None
    # With --include only: the final response, what the engine knew of its transfer, and the
    # kept part of its body.
    final: Response | None = None
    info: TransferInfo | None = None
    kept: BodyKeeper | None = None
    derived: dict[str, Any] | None = None  # the body's keys, computed off the loop if large

    def saw(self, response: Response) -> None:
        """A response head arrived (a redirect, or the final one)."""
        self.status = response.status
        retry_after = None
        if response.status in _RETRY_AFTER_STATUSES:
            retry_after = response.headers.get("retry-after")
        if self.rate_limits:
            self.hints = ServerHints(retry_after, response.headers)
        else:
            self.hints = None if retry_after is None else ServerHints(retry_after)
        self.content_type = response.content_type
        self.http_version = response.http_version


class _CountedAttempt(_Outcome):
    """One attempt at a plain URL on the engine's callbacks (:meth:`Fetcher.start`): the steps
    of :meth:`Fetcher._fetch` for a body that is only counted (and hashed, for --hash),
    redirects and --cache included, ending in the same record. It is its own :class:`_Outcome`
    (one object per attempt)."""

    # Defaults, as _Outcome's: set only by the attempts that use them.
    _cached: Validators | None = None  # --cache: what the look-up found
    #: The cached validators' headers, sent with the first request and every redirect.
    _extra: Headers = ()
    _deadline: float | None = None
    _hasher: Any = None  # --hash: the body's sha256, fed as libcurl delivers it

    def __init__(self, fetcher: Fetcher, url: str, done: Done[Any], token: Any) -> None:
        self._fetcher = fetcher
        self._url = url
        self._done = done
        self._token = token
        if fetcher._rate_limits:
            self.rate_limits = True
        self._started_at = now_iso()
        self._t0 = time.perf_counter()

    def _send(self, request: Request, target: Target) -> None:
        self._request, self._target = request, target
        self.final_url = target.shown
        fetcher = self._fetcher
        assert fetcher._count is not None
        fetcher._count(
            request,
            done=self._transferred,
            on_head=self._wants_body,
            ask_for=fetcher._ask_for,
            extra=self._extra,
        )

    def _looked_up(self, cached: Validators | None) -> None:
        """--cache: the look-up's answer; the first request goes out, as
        :meth:`Fetcher._first_request` makes it (the validators as ``extra`` headers: the
        request's own stay the run's one tuple, which the engine formats once)."""
        try:
            if cached is not None:
                self._use(cached)
            self._send_first()
        except Exception as exc:
            self._end(exc)

    def _use(self, cached: Validators) -> None:
        self._cached = cached
        self._extra = cached.header_pairs()

    def _send_first(self) -> None:
        fetcher, target = self._fetcher, self._target
        self._send(fetcher._first_request(target, None, fetcher._plain, self._deadline), target)

    def _wants_body(self, response: Response) -> bool | BodySink:
        if response.status in self._fetcher._redirect_statuses:
            # One that will be followed is not read (the transfer stops at its head, as
            # Fetcher._send_following closes it).
            return response.headers.get("location") is None
        # Asked about a 2xx only with --hash: as Fetcher._body_consumer, fed as it arrives.
        hasher = self._hasher = self._fetcher._sha256()
        return hasher.update  # type: ignore[no-any-return]

    def _transferred(self, response: Response | None, failure: BaseException | None) -> None:
        try:
            if response is not None:
                self.saw(response)
                if response.status in self._fetcher._redirect_statuses and failure is None:
                    location = response.headers.get("location")
                    if location is not None:
                        self._follow(location, response.status)
                        return
                self.bytes = response.bytes_read
                if failure is None:
                    if self._hasher is not None:
                        self.sha256 = self._hasher.hexdigest()
                    if self._fetcher._counted_cache is not None:
                        self._update_cache(response)
        except Exception as exc:
            self._end(exc)
            return
        self._end(failure)

    def _update_cache(self, response: Response) -> None:
        """As :meth:`Fetcher._update_cache`; the store is written behind."""
        fetcher = self._fetcher
        cache = fetcher._counted_cache
        assert cache is not None
        cached = self._cached
        self.not_modified = response.status == 304 and cached is not None
        fresh = fetcher._validators.to_keep(cached, response)
        if fresh != cached:
            cache.store(self._url, fresh)

    def _follow(self, location: str, status: int) -> None:
        settings = self._fetcher._settings
        if self.redirects >= settings.max_redirects:
            raise TooManyRedirects(f"stopped after {settings.max_redirects} redirects")
        request, target = _redirect_request(self._request, self._target, location, status)
        self.redirects += 1
        self._send(request, target)

    def _end(self, failure: BaseException | None) -> None:
        fetcher, url = self._fetcher, self._url
        try:
            error = None if failure is None else classify(failure, fetcher._secrets_for(url))
            record = fetcher._record(
                url, None, fetcher._plain_method, self, error, self._t0, self._started_at
            )
        except Exception as exc:
            # A fault of afetch's own: still one record for the URL, and never a run that
            # waits for an attempt nobody will finish.
            problem = FetchError(
                ErrorType.OTHER.value, f"afetch could not describe this attempt ({exc!r})"
            )
            record = Record(url=url, error=problem, started_at=self._started_at)
        self._done(self._token, record, self.hints)
