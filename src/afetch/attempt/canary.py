"""``--include soft404``'s canaries: per host one attempt at a path that cannot exist, whose end
is the :class:`afetch.attempt.soft404.Sign` the host's 200s are compared with (see
:mod:`afetch.attempt.soft404`). Above the attempt machine (a canary is an attempt), made by the
fetcher for the run's plan. A run without ``soft404`` never imports this module.
"""

from __future__ import annotations

import asyncio
import copy
import math
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from afetch._url import parse_url
from afetch.attempt.include import BodyKeeper, IncludePlan
from afetch.attempt.machine import Attempt, Shape
from afetch.attempt.soft404 import Sign, sign_of

if TYPE_CHECKING:
    from afetch.attempt.plan import Plan
    from afetch.attempt.redirect import Headers
    from afetch.engine.base import Response


def canary_url(url: str) -> str:
    """A path on ``url``'s origin that no site has: ``/`` and 16 random hex digits.

    >>> url = canary_url("https://u:p@example.org:8443/a/b?c#d")
    >>> url[:29], len(url) - 29
    ('https://u:p@example.org:8443/', 16)
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + secrets.token_hex(8), "", ""))


class Canaries:
    """A run's canaries: one per origin, started on first need, its :class:`Sign` shared."""

    __slots__ = ("_plan", "_signs", "pace")

    def __init__(self, plan: Plan, body_limit: int) -> None:
        # The run's plan, less what a canary must not do: no --cache look-up or update, no file
        # or hash; its body kept for the sign.
        self._plan = canary = copy.copy(plan)
        canary.cache = None
        canary.keep_bodies = False
        canary.wanted = wanted = IncludePlan((), body_limit=body_limit)
        wanted.body = True
        self._signs: dict[tuple[str, str, int], asyncio.Future[Sign | None]] = {}
        #: The scheduler's pacing (``--rate``, ``--host-rate``, ``--rate-limit-headers``): told
        #: of each canary's URL, it counts the request and says how many seconds it must wait.
        self.pace: Callable[[str], float] | None = None

    def sign_for(self, url: str, headers: Headers) -> asyncio.Future[Sign | None]:
        """The sign of the canary of ``url``'s origin (None: it failed), started if it is the
        first asked for; ``headers`` are the asking request's (method and body left out)."""
        origin = parse_url(url).origin
        future = self._signs.get(origin)
        if future is None:
            loop = asyncio.get_running_loop()
            self._signs[origin] = future = loop.create_future()
            shape: Shape = ("GET", None, headers)
            canary = CanaryAttempt(self._plan, canary_url(url), shape, None, _settle, future)
            clock = self._plan.clock or loop
            wait = 0.0 if self.pace is None else self.pace(url)
            if 0 < wait < math.inf:
                clock.call_later(wait, lambda: canary.begin(clock.time()))
            else:  # math.inf: a --rate-limit-headers probe is out, whose record waits for this
                canary.begin(clock.time())
        return future


def _settle(future: asyncio.Future[Sign | None], sign: Any, hints: object) -> None:
    if not future.done():
        future.set_result(sign)


class CanaryAttempt(Attempt):
    """An attempt whose end is a :class:`Sign` (or None), never a record."""

    def _conclude(self, failure: BaseException | None, response: Response | None = None) -> None:
        kept = self.kept
        if failure is not None or self.status != 200 or kept is None:
            self._end(failure)
            return
        landing = self.final_url if self.redirects else None
        self.task = asyncio.ensure_future(self._signed(kept, landing))

    async def _signed(self, kept: BodyKeeper, landing: str | None) -> None:
        try:
            sign: Sign | None = await sign_of(200, kept, self.content_type, self.url, landing)
        except Exception:
            sign = None
        self.task = None
        self._tell(sign)

    def _end(self, failure: BaseException | None) -> None:
        self._tell(None)

    def _tell(self, sign: Sign | None) -> None:
        if self.over:
            return
        self.over = True
        self.done(self.token, sign, None)
