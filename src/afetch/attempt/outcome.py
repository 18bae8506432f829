"""What one attempt learned so far, and the record it makes of it.

:class:`afetch.attempt.machine.Attempt` is an :class:`Outcome` that runs: the machine's steps
fill in what this keeps (the last head's status, type and pacing hints, the bytes, the file,
the ``--include`` parts) and its end step turns it into the record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from afetch._record import FetchError, Record, new_record
from afetch._spec import RequestSpec, request_key
from afetch.attempt.plan import Plan
from afetch.engine.base import Response, TransferInfo

if TYPE_CHECKING:
    from afetch._include import Verdict
    from afetch.attempt.include import BodyKeeper


class ServerHints(NamedTuple):
    """What the last response head said about pacing, for the scheduler, which parses it
    (afetch.schedule.retry, afetch.schedule.ratelimit): the ``Retry-After`` of a 429 or 503,
    and with ``--rate-limit-headers`` the head's headers (its RateLimit fields)."""

    retry_after: str | None
    headers: Sequence[tuple[str, str]] | None = None


# Where the scheduler may honour Retry-After when retrying (RFC 9110 section 10.2.3).
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class Outcome:
    """What an attempt knows of its URL so far, whatever happens next.

    Class attributes are the defaults (one object per attempt, no more): an attempt sets only
    what it learns.
    """

    plan: Plan
    url: str
    method: str | None  # as the record says it (None: not said)
    started_at: str
    t0: float  # time.perf_counter() when the attempt began
    spec: RequestSpec | None = None

    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    http_version: str | None = None
    redirects = 0
    bytes = 0
    hints: ServerHints | None = None
    not_modified: bool | None = None  # set (False/True) only with --cache
    path: str | None = None
    sha256: str | None = None
    # With --include only: the final response, what the engine knew of its transfer, and the
    # kept part of its body.
    final: Response | None = None
    info: TransferInfo | None = None
    kept: BodyKeeper | None = None
    derived: dict[str, Any] | None = None  # the body's keys, computed off the loop if large
    verdict: Verdict | None = None  # --include soft404: the likeness to the host's canary
    waited_from: float | None = None  # --include soft404: when the wait for the canary began

    def saw(self, response: Response) -> None:
        """A response head arrived (a redirect, or the final one)."""
        self.status = response.status
        retry_after = None
        if response.status in _RETRY_AFTER_STATUSES:
            retry_after = response.header("retry-after")
        if self.plan.rate_limits:
            self.hints = ServerHints(retry_after, response.headers)
        else:
            self.hints = None if retry_after is None else ServerHints(retry_after)
        self.content_type = response.content_type
        self.http_version = response.http_version

    def record(self, error: FetchError | None) -> Record:
        spec = self.spec
        # All the fields, in Record's order (new_record is Record(...) without its slow init).
        return new_record(
            self.url,
            self.final_url,
            self.status,
            error,
            # Milliseconds to three decimals: round(x, 3) goes through decimal digits (dtoa),
            # several times the cost of rounding microseconds to an int.
            round(((self.waited_from or time.perf_counter()) - self.t0) * 1_000_000) / 1000,
            self.bytes,
            self.content_type,
            self.http_version,
            self.redirects,
            1,  # attempts: the scheduler counts them
            self.started_at,
            self.not_modified,
            self.path,
            self.sha256,
            self.method,
            None if spec is None else spec.meta,
            None if spec is None else request_key(spec),
            None if self.plan.wanted is None else self._extra_or_none(),
        )

    def _extra_or_none(self) -> dict[str, object] | None:
        # Whatever a server sends, one record per URL: an --include key that cannot be built
        # is left out (null) rather than ending the run.
        from afetch.attempt.include import build_included

        assert self.plan.wanted is not None
        final = self.final
        try:
            return build_included(
                self.plan.wanted,
                headers=None if final is None else final.headers,
                content_type=self.content_type,
                info=self.info,
                kept=self.kept,
                derived=self.derived,
                verdict=self.verdict,
            )
        except Exception:
            return None
