"""Following a redirect (RFC 9110 section 15.4), as curl and httpx do, and the credentials a
URL carries, which go only to its own origin."""

from __future__ import annotations

from afetch._url import Target, join
from afetch.engine.base import Request

Headers = tuple[tuple[str, str], ...]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Credentials must not follow a redirect to another origin (curl and httpx behave the same).
# Not Proxy-Authorization: it is the proxy's, which stays the same across redirects, and the
# engines never send it to a server (libcurl puts it in CURLOPT_PROXYHEADER; the httpx adapter
# drops it).
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie"})


def redirect_request(
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
        with_credentials(headers, next_target),
        body,
        deadline=request.deadline,
    )
    return follow, next_target


def _is_body_header(name: str) -> bool:
    lower = name.lower()
    return lower == "content-type" or lower == "content-length"


def with_credentials(headers: Headers, target: Target) -> Headers:
    """``user:password@`` in the URL becomes Basic auth for that URL's origin (as curl and wget
    do); an Authorization given with -H wins."""
    if target.authorization is None or any(n.lower() == "authorization" for n, _ in headers):
        return headers
    return (*headers, ("Authorization", target.authorization))
