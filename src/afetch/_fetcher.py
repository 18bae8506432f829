"""Fetching one URL: redirects, streaming the body, and turning every outcome into a record."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from datetime import UTC, datetime

import httpx

from afetch._body import body_pieces
from afetch._cache import Cache, Validators
from afetch._errors import AfetchError, BadResponse, InvalidURL, TooManyRedirects, classify
from afetch._guard import guarded
from afetch._record import FetchError, Record
from afetch._redact import header_secrets, redact
from afetch._save import BodyConsumer
from afetch._settings import Settings

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Where the scheduler may honour Retry-After when retrying (RFC 9110 section 10.2.3).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# Credentials must not follow a redirect to another origin (curl and httpx behave the same).
_ORIGIN_BOUND_HEADERS = ("authorization", "cookie", "proxy-authorization")


def _parse_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidURL(f"not an http(s) URL: {raw[:200]!r}")
    # httpx percent-encodes a space in the host instead of rejecting it; no real host has one.
    if not url.host or "%" in url.host or any(c.isspace() for c in url.host):
        raise InvalidURL(f"URL has no valid host: {raw[:200]!r}")
    if url.port is not None and not 0 < url.port < 65536:
        raise InvalidURL(f"URL has no valid port: {raw[:200]!r}")
    return url


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def base_headers(settings: Settings) -> httpx.Headers:
    """Request headers shared by every request of a run, built once."""
    headers = httpx.Headers(
        {"User-Agent": settings.user_agent, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
    )
    for name, value in settings.headers:
        headers[name] = value
    return headers


class Fetcher:
    """Fetches single URLs over one transport; never raises for per-URL trouble.

    >>> import asyncio, httpx
    >>> mock = httpx.MockTransport(lambda request: httpx.Response(204))
    >>> record = asyncio.run(Fetcher(mock, Settings()).fetch("http://127.0.0.1/"))
    >>> record.status, record.ok
    (204, True)
    """

    def __init__(self, transport: httpx.AsyncBaseTransport, settings: Settings) -> None:
        self._transport = guarded(transport, no_private=settings.no_private)
        self._settings = settings
        self._headers = base_headers(settings)
        self._secrets = header_secrets(settings.headers)
        connect = settings.connect_timeout or settings.timeout
        self._timeouts = {
            "connect": connect,
            "read": settings.timeout,
            "write": settings.timeout,
            "pool": settings.timeout,
        }
        # Optional hooks (--cache, --save-dir/--hash); None keeps the default path untouched.
        self._cache = Cache(settings.cache_dir) if settings.cache_dir is not None else None
        self._keep_bodies = settings.save_dir is not None or settings.hash_bodies

    async def fetch(self, url: str) -> Record:
        """One attempt at ``url``, as a record."""
        return (await self.attempt(url))[0]

    async def attempt(self, url: str) -> tuple[Record, str | None]:
        """One attempt at ``url``: its record and the last response's ``Retry-After``, if any."""
        started_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        t0 = time.perf_counter()
        state = _Progress()
        error = None
        try:
            async with asyncio.timeout(self._settings.timeout):
                await self._attempt(url, state)
        except TimeoutError:
            error = classify(TimeoutError(f"no complete response within {self._settings.timeout}s"))
        except Exception as exc:  # every per-URL failure becomes a record
            error = classify(exc)
        if error is not None:
            error = self._redacted(error, url)
        record = Record(
            url=url,
            final_url=state.final_url,
            status=state.status,
            error=error,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
            bytes=state.bytes,
            content_type=state.content_type,
            http_version=state.http_version,
            redirects=state.redirects,
            attempts=1,
            started_at=started_at,
            not_modified=state.not_modified,
            path=state.path,
            sha256=state.sha256,
        )
        return record, state.retry_after

    def _redacted(self, error: FetchError, url: str) -> FetchError:
        """Error messages can quote URLs and header values: mask passwords and -H values."""
        secrets = self._secrets
        with contextlib.suppress(httpx.InvalidURL, ValueError, TypeError):
            parsed = httpx.URL(url)
            raw = parsed.userinfo.decode("ascii", "replace").partition(":")[2]
            # The password both decoded and as typed (percent-encoded).
            secrets = (*(p for p in (parsed.password, raw) if p), *secrets)
        message = redact(error.message, secrets)
        return error if message == error.message else FetchError(error.type, message)

    async def _read_body(
        self, response: httpx.Response, state: _Progress, body: BodyConsumer | None
    ) -> None:
        try:
            async for piece in body_pieces(response, max_size=self._settings.max_size):
                state.bytes += len(piece)
                if body is not None:
                    await body.feed(piece)
            if body is not None:
                state.path, state.sha256 = await body.finish()
        except AfetchError:
            raise
        except Exception as exc:
            # A reset mid-body is a truncated body, as aiohttp-based transports report it too.
            if classify(exc).type == "reset":
                raise BadResponse(
                    f"body cut short after {state.bytes} bytes: connection reset"
                ) from exc
            raise

    async def _attempt(self, raw_url: str, state: _Progress) -> None:
        settings = self._settings
        url = _parse_url(raw_url)
        method = settings.method
        headers = self._headers
        cached = None
        if self._cache is not None:
            state.not_modified = False
            cached = await asyncio.to_thread(self._cache.lookup, raw_url)
            if cached is not None:
                headers = headers.copy()
                headers.update(cached.request_headers())
        while True:
            state.final_url = str(url)
            body: BodyConsumer | None = None
            request = httpx.Request(
                method,
                url,
                headers=_with_url_credentials(headers, url),
                extensions={"timeout": self._timeouts},
            )
            response = await self._transport.handle_async_request(request)
            try:
                response.request = request
                state.status = response.status_code
                if response.status_code in _RETRY_AFTER_STATUSES:
                    state.retry_after = response.headers.get("retry-after")
                state.content_type = response.headers.get("content-type")
                state.http_version = response.extensions.get("http_version", b"HTTP/1.1").decode(
                    "ascii", "replace"
                )
                location = response.headers.get("location")
                if (
                    settings.follow_redirects
                    and location is not None
                    and response.status_code in _REDIRECT_STATUSES
                ):
                    if state.redirects >= settings.max_redirects:
                        raise TooManyRedirects(f"stopped after {settings.max_redirects} redirects")
                    next_url = _parse_url(str(url.join(location)))
                    if _origin(next_url) != _origin(url):
                        headers = _without_origin_bound(headers)
                    if response.status_code == 303 and method != "HEAD":
                        method = "GET"
                    state.redirects += 1
                    url = next_url
                    continue
                body = self._body_consumer(raw_url, method, response)
                if method != "HEAD":
                    await self._read_body(response, state, body)
                if self._cache is not None:
                    await self._update_cache(raw_url, cached, response, state)
                return
            finally:
                if body is not None:
                    body.abort()  # no-op after finish(): removes a partial file
                await response.aclose()

    def _body_consumer(
        self, raw_url: str, method: str, response: httpx.Response
    ) -> BodyConsumer | None:
        """--save-dir/--hash: a consumer for a 2xx body, fed chunk by chunk (see _save.py)."""
        if not self._keep_bodies or method == "HEAD" or not 200 <= response.status_code < 300:
            return None
        return BodyConsumer(raw_url, self._settings.save_dir)

    async def _update_cache(
        self, raw_url: str, cached: Validators | None, response: httpx.Response, state: _Progress
    ) -> None:
        assert self._cache is not None
        state.not_modified = response.status_code == 304 and cached is not None
        if response.status_code == 304:
            fresh = Validators.of(response) or cached  # a 304 may omit unchanged validators
        elif 200 <= response.status_code < 300:
            fresh = Validators.of(response)
        else:
            return  # an error page says nothing about the representation we keep
        if fresh != cached:
            await asyncio.to_thread(self._cache.store, raw_url, fresh)


def _with_url_credentials(headers: httpx.Headers, url: httpx.URL) -> httpx.Headers:
    """``user:password@`` in the URL becomes Basic auth for that URL's origin (as curl and wget
    do); an Authorization given with -H wins."""
    if not url.userinfo or "authorization" in headers:
        return headers
    token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
    with_auth = headers.copy()
    with_auth["Authorization"] = f"Basic {token}"
    return with_auth


def _without_origin_bound(headers: httpx.Headers) -> httpx.Headers:
    if not any(name in headers for name in _ORIGIN_BOUND_HEADERS):
        return headers
    stripped = headers.copy()
    for name in _ORIGIN_BOUND_HEADERS:
        stripped.pop(name, None)
    return stripped


class _Progress:
    """What is known so far about one URL; becomes the record whatever happens."""

    __slots__ = (
        "bytes",
        "content_type",
        "final_url",
        "http_version",
        "not_modified",
        "path",
        "redirects",
        "retry_after",
        "sha256",
        "status",
    )

    def __init__(self) -> None:
        self.final_url: str | None = None
        self.status: int | None = None
        self.content_type: str | None = None
        self.http_version: str | None = None
        self.redirects = 0
        self.bytes = 0
        self.retry_after: str | None = None
        self.not_modified: bool | None = None  # set (False/True) only with --cache
        self.path: str | None = None
        self.sha256: str | None = None
