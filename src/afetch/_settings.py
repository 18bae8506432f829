"""Run settings: one frozen value shared by the scheduler, the fetcher and the sinks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from afetch._include import parse_include
from afetch._version import __version__

DEFAULT_USER_AGENT = f"afetch/{__version__}"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Kinds of ``body``: form encoded (curl's -d) or JSON (curl's --json).
BODY_KINDS = ("form", "json")
#: Proxy URL schemes libcurl speaks; a proxy without a scheme is an HTTP proxy (as curl's -x).
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
DEFAULT_TIMEOUT = 30.0
#: ``--body-limit``: bytes of a body kept for ``body``, ``json`` and ``title``.
DEFAULT_BODY_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How a run fetches.

    >>> Settings(concurrency=50, timeout=5.0).concurrency
    50
    """

    concurrency: int = 10
    #: Deadline in seconds for one attempt as a whole (connect, headers and body).
    timeout: float | None = DEFAULT_TIMEOUT
    #: Deadline in seconds for establishing a connection; defaults to ``timeout``.
    connect_timeout: float | None = None
    #: Extra request headers as (name, value) pairs; never echoed into records.
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    #: ``-X``; None means GET, or POST for a request with a body (as curl).
    method: str | None = None
    #: ``-d``/``--json``: the body of every request whose request object gives none.
    body: bytes | None = None
    #: ``"form"``: Content-Type application/x-www-form-urlencoded (``-d``); ``"json"``:
    #: Content-Type and Accept application/json (``--json``).
    body_kind: str = "form"
    follow_redirects: bool = True
    max_redirects: int = 10
    #: Verify TLS certificates.
    verify: bool = True
    http2: bool = False
    #: Try HTTP/3 (QUIC) first, falling back to HTTP/2 or 1.1 over TCP (curl's ``--http3``).
    http3: bool = False
    #: PEM file of CA certificates to verify TLS with, instead of the default bundle.
    cacert: str | None = None
    #: Abort a body beyond this many bytes (on the wire or decoded), error type ``too_large``.
    max_size: int | None = None
    #: Refuse URLs and redirects to loopback, private, link-local and other non-global addresses.
    no_private: bool = False
    #: Proxy URL for every request (``--proxy``); None: the environment's (``http_proxy``,
    #: ``https_proxy``, ``all_proxy``, ``no_proxy``), as curl; "" disables proxies altogether.
    proxy: str | None = None
    #: Hosts reached without the proxy (``--noproxy``, curl's syntax); overrides ``no_proxy``.
    noproxy: str | None = None
    #: Retries after a transient failure (connect/timeout/reset, 429/502/503/504); 0 disables.
    retries: int = 2
    #: Base of the exponential backoff in seconds (full jitter).
    backoff: float = 0.5
    #: Longest single wait before a retry; a longer Retry-After means giving up.
    max_retry_wait: float = 60.0
    #: At most this many requests in flight per host (scheme+host+port); None = no bound;
    #: ``"auto"``: a limit per host learned from its answers (see ``afetch.schedule.autolimit``).
    per_host: int | Literal["auto"] | None = None
    #: At most this many requests started per second overall; None = unlimited.
    rate: float | None = None
    #: At most this many requests started per second per host; None = unlimited.
    host_rate: float | None = None
    #: After this many consecutive connection failures a host's remaining URLs fail fast.
    max_host_errors: int | None = None
    #: Pace each host by the rate-limit fields it sends (RateLimit, RateLimit-Policy, the older
    #: RateLimit-*/X-RateLimit-* fields) and by a 429/503's Retry-After: at none remaining, no
    #: request goes to it until the reset (see ``afetch.schedule.ratelimit``).
    rate_limit_headers: bool = False
    #: Try each failure once more at the end of the run, after ``confirm_delay`` seconds (a HEAD
    #: as a GET); its record says ``confirmed`` (see ``afetch.schedule.confirm``).
    confirm: bool = False
    confirm_delay: float = 5.0
    #: Yield records in input order (a bounded reorder window; see ``afetch.schedule.ordering``).
    ordered: bool = False
    #: Keep ETag/Last-Modified per URL here and send conditional requests (``--cache``).
    cache_dir: str | None = None
    #: Stream successful bodies into files under this folder (``--save-dir``).
    save_dir: str | None = None
    #: Add the SHA-256 of each successful body to its record (``--hash``).
    hash_bodies: bool = False
    #: Included record keys (``--include``): names from :data:`afetch._include.NAMES`, or one
    #: string of comma-separated names; kept in that order, without repeats.
    include: tuple[str, ...] = ()
    #: Bytes of the body kept for ``body``, ``json`` and ``title``; the rest is only counted.
    body_limit: int = DEFAULT_BODY_LIMIT

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.connect_timeout is not None and self.connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        if self.max_size is not None and self.max_size < 0:
            raise ValueError("max_size must be zero or more")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be zero or more")
        if self.retries < 0:
            raise ValueError("retries must be zero or more")
        if not (self.backoff >= 0 and self.max_retry_wait >= 0):  # also refuses NaN
            raise ValueError("backoff and max_retry_wait must be zero or more")
        if not self.confirm_delay >= 0:
            raise ValueError("confirm_delay must be zero or more")
        if self.per_host not in (None, "auto") and (
            isinstance(self.per_host, bool) or not isinstance(self.per_host, int)
        ):
            raise ValueError("per_host must be a number or 'auto'")
        for name in ("per_host", "max_host_errors"):
            value = getattr(self, name)
            if value == "auto":
                continue
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("rate", "host_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive")
        if self.proxy:
            scheme, sep, _ = self.proxy.partition("://")
            if sep and scheme.lower() not in PROXY_SCHEMES:
                # Only the scheme is shown: the URL may carry a password.
                raise ValueError(
                    f"proxy scheme {scheme[:20]!r} is not one of {', '.join(PROXY_SCHEMES)}"
                )
        if self.method is not None and self.method.upper() not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        if self.body_kind not in BODY_KINDS:
            raise ValueError(f"body_kind must be one of {', '.join(BODY_KINDS)}")
        if self.body is not None and self.method is not None and self.method.upper() == "HEAD":
            raise ValueError("a HEAD request has no body")
        for name in (
            "timeout",
            "connect_timeout",
            "backoff",
            "max_retry_wait",
            "confirm_delay",
            "rate",
            "host_rate",
        ):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.method is not None:
            object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "include", parse_include(self.include))
        if self.body_limit < 0:
            raise ValueError("body_limit must be zero or more")
