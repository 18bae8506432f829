"""What every attempt of a run shares (:class:`Plan`), worked out once from its settings."""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

from afetch._redact import header_secrets
from afetch._spec import RequestSpec
from afetch.attempt.redirect import REDIRECT_STATUSES
from afetch.engine.base import Engine

if TYPE_CHECKING:
    import asyncio

    from afetch._clock import Clock
    from afetch.attempt.include import IncludePlan
    from afetch.attempt.redirect import Headers
    from afetch.attempt.soft404 import Sign
    from afetch.cache import BatchedCache
    from afetch.engine.guard import AddressCheck

_SUCCESS = range(200, 300)
#: Every status: --include body keeps the body of whatever response is final.
_EVERY_STATUS = range(1000)


class Canaries(Protocol):
    """--include soft404: a run's canaries as an attempt asks them (afetch.attempt.canary,
    above the attempt machine: the fetcher sets them on its plan)."""

    def sign_for(self, url: str, headers: Headers) -> asyncio.Future[Sign | None]: ...


class Plan:
    """What every attempt of a run shares, worked out once from the run's settings."""

    __slots__ = (
        "address_check",
        "ask_for",
        "body_consumer",
        "cache",
        "canaries",
        "clock",
        "engine",
        "keep_bodies",
        "max_redirects",
        "rate_limits",
        "redirect_statuses",
        "save_dir",
        "secrets",
        "sha256",
        "timeout",
        "unknown",
        "validators",
        "wanted",
    )
    #: --include soft404: the run's canaries, one per host (set only then, by the fetcher).
    canaries: Canaries

    def __init__(
        self,
        engine: Engine,
        *,
        follow: bool,
        max_redirects: int,
        timeout: float | None,
        secrets: tuple[str, ...],
        address_check: AddressCheck | None = None,
        cache: BatchedCache | None = None,
        wanted: IncludePlan | None = None,
        keep_bodies: bool = False,
        save_dir: str | None = None,
        clock: Clock | None = None,
        rate_limits: bool = False,
    ) -> None:
        self.engine = engine
        #: --rate-limit-headers: the heads' headers go to the scheduler with the Retry-After.
        self.rate_limits = rate_limits
        #: What deadlines are times on (None: the running loop).
        self.clock = clock
        #: The engine is asked about the heads of these statuses: redirects to follow.
        self.redirect_statuses = REDIRECT_STATUSES if follow else frozenset()
        self.max_redirects = max_redirects
        self.timeout = timeout
        self.secrets = secrets
        self.address_check = address_check
        self.cache = cache
        if cache is not None:
            # Imported for --cache only: a run without it never loads sqlite3.
            from afetch.cache import UNKNOWN, Validators

            self.validators, self.unknown = Validators, UNKNOWN
        self.wanted = wanted
        self.keep_bodies = keep_bodies
        if keep_bodies:
            from hashlib import sha256  # --save-dir/--hash only

            from afetch.attempt.save import BodyConsumer

            self.body_consumer = BodyConsumer
            #: --hash alone: each body straight into a hash of its own, no consumer object.
            self.sha256 = sha256
        self.save_dir = save_dir
        ask_for: Container[int] = self.redirect_statuses
        if wanted is not None and wanted.body:
            ask_for = _EVERY_STATUS
        elif keep_bodies:
            ask_for = self.redirect_statuses | frozenset(_SUCCESS)
        #: Heads the engine asks the attempt about (the others' bodies are only counted).
        self.ask_for = ask_for


def secrets_for(
    secrets: tuple[str, ...], url: str, spec: RequestSpec | None = None
) -> tuple[str, ...]:
    """What an error message about ``url`` must not show (classify masks them before it cuts
    the message): the run's ``secrets`` (-H values, proxy credentials), the values of a
    request object's headers and the URL's password."""
    if spec is not None and spec.headers:
        found = {*header_secrets(spec.headers), *secrets}
        secrets = tuple(sorted(found, key=len, reverse=True))
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    if userinfo:
        raw = userinfo.partition(":")[2]
        # The password both decoded and as typed (percent-encoded).
        secrets = (*(p for p in (unquote(raw), raw) if p), *secrets)
    return secrets
