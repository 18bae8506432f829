"""Run settings: one frozen value shared by the scheduler, the fetcher and the sinks."""

from __future__ import annotations

from dataclasses import dataclass

from afetch._version import __version__

DEFAULT_USER_AGENT = f"afetch/{__version__}"
METHODS = ("GET", "HEAD")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How a run fetches.

    >>> Settings(concurrency=50, timeout=5.0).concurrency
    50
    """

    concurrency: int = 10
    #: Deadline in seconds for one attempt as a whole (connect, headers and body).
    timeout: float | None = 30.0
    #: Deadline in seconds for establishing a connection; defaults to ``timeout``.
    connect_timeout: float | None = None
    #: Extra request headers as (name, value) pairs; never echoed into records.
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    method: str = "GET"
    follow_redirects: bool = True
    max_redirects: int = 10
    #: Verify TLS certificates.
    verify: bool = True
    http2: bool = False
    #: Yield records in input order (a bounded reorder window; see ``afetch._ordering``).
    ordered: bool = False
    #: Keep ETag/Last-Modified per URL here and send conditional requests (``--cache``).
    cache_dir: str | None = None
    #: Stream successful bodies into files under this folder (``--save-dir``).
    save_dir: str | None = None
    #: Add the SHA-256 of each successful body to its record (``--hash``).
    hash_bodies: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.connect_timeout is not None and self.connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be zero or more")
        if self.method.upper() not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        object.__setattr__(self, "method", self.method.upper())
