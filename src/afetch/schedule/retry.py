"""When to try a URL again, and how long to wait first.

Pure policy: no sleeping here. The scheduler asks :meth:`RetryPolicy.next_wait` after each attempt
and parks the URL on a timer, so a URL waiting to retry holds no concurrency slot and no task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from afetch._errors import ErrorTrait, error_types_with
from afetch._record import Record
from afetch._settings import Settings

if TYPE_CHECKING:
    import random

#: Statuses worth another try: rate limited or a gateway/server that says "not now".
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Error types worth another try: the connection failed or was lost, the server may recover
#: (``ErrorTrait.RETRY``; afetch._errors.ErrorType says which and why).
RETRY_ERRORS = error_types_with(ErrorTrait.RETRY)
#: Methods that are safe to send twice (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Error types after which a request surely was not sent: the connection never opened. The only
#: retries a request that is not idempotent (POST, PATCH) gets: after a response, a reset or a
#: timeout the server may have acted on it, and a second try could do it twice.
NOT_SENT_ERRORS = error_types_with(ErrorTrait.NOT_SENT)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries with exponential backoff and full jitter, honouring ``Retry-After``.

    Backoff before retry *n* (1-based) is uniform in ``[0, min(max_wait, backoff * 2**(n-1))]``.
    A ``Retry-After`` longer than ``max_wait`` means giving up: the server asked for a pause
    longer than the user allows, and retrying earlier would only be refused again.

    >>> import random
    >>> policy = RetryPolicy(retries=2, backoff=0.5, max_wait=60.0, rng=random.Random(1))
    >>> 0 <= policy.backoff_for(1) <= 0.5, 0 <= policy.backoff_for(3) <= 2.0
    (True, True)
    >>> policy.wait_after(2, retry_after="3", status=429)
    3.0
    >>> policy.wait_after(3, retry_after="3", status=429) is None  # out of retries
    True
    >>> policy.wait_after(1, retry_after="120", status=429) is None  # longer than max_wait
    True
    """

    retries: int = 2
    backoff: float = 0.5
    max_wait: float = 60.0
    rng: random.Random | None = None

    def should_retry(self, record: Record, *, method: str) -> bool:
        """Whether ``record``'s outcome is transient and repeating ``method`` is safe.

        >>> from afetch._record import FetchError
        >>> refused = Record(url="u", error=FetchError("connect", "refused"))
        >>> RetryPolicy().should_retry(refused, method="POST")
        True
        >>> RetryPolicy().should_retry(Record(url="u", status=503), method="POST")
        False
        """
        error = record.error
        if method in IDEMPOTENT_METHODS:
            if error is not None:
                return error.type in RETRY_ERRORS
            return record.status in RETRY_STATUSES
        return error is not None and error.type in NOT_SENT_ERRORS

    def backoff_for(self, retry: int) -> float:
        """The jittered wait before retry number ``retry`` (1 for the first retry)."""
        if self.rng is None:
            import random  # here: a run that retries nothing never loads it

            return random.uniform(0.0, self.ceiling(retry))
        return self.rng.uniform(0.0, self.ceiling(retry))

    def ceiling(self, retry: int) -> float:
        """The longest backoff before retry number ``retry``; half of it is the mean wait."""
        return min(self.max_wait, self.backoff * 2.0 ** min(retry - 1, 60))

    def wait_after(
        self, attempts: int, *, retry_after: str | None = None, status: int | None = None
    ) -> float | None:
        """Seconds to wait before the next try after ``attempts`` tries; None means stop.

        ``retry_after`` is the raw header of the last response; it is only consulted for 429
        and 503, the statuses for which RFC 9110 gives it a meaning when retrying.
        """
        if attempts > self.retries:
            return None
        if retry_after is not None and status in (429, 503):
            asked = parse_retry_after(retry_after)
            if asked is not None:
                return asked if asked <= self.max_wait else None
        return self.backoff_for(attempts)

    def next_wait(self, record: Record, attempts: int, *, retry_after: str | None) -> float | None:
        """Seconds before the next try after ``attempts`` tries, the last of which ended in
        ``record``; None to keep ``record`` as the URL's.

        >>> policy, busy = RetryPolicy(retries=1), Record(url="u", status=503)
        >>> policy.next_wait(busy, 1, retry_after="2")
        2.0
        >>> policy.next_wait(busy, 2, retry_after="2") is None  # out of retries
        True
        >>> posted = Record(url="u", status=503, method="POST")
        >>> policy.next_wait(posted, 1, retry_after=None) is None  # answered: not sent twice
        True
        """
        # The record says the method when it is not a plain GET.
        if not self.should_retry(record, method=record.method or "GET"):
            return None
        try:
            return self.wait_after(attempts, retry_after=retry_after, status=record.status)
        except Exception:
            # Whatever a server sends, one record per URL: a header the policy chokes on ends
            # the retries instead of the run.
            return None

    def mean_backoff_after(self, attempts: int) -> float:
        """The mean backoff of the retries that may follow the next one (for an ETA)."""
        return sum(self.ceiling(retry) / 2 for retry in range(attempts + 1, self.retries + 1))


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delta-seconds or an HTTP date); None if bad.

    >>> parse_retry_after("5")
    5.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") # long past: no wait
    0.0
    >>> parse_retry_after("soon") is None, parse_retry_after("\u00b2") is None
    (True, True)
    """
    value = value.strip()
    if value.isdigit():
        # str.isdigit() also accepts digits such as "²" that float() refuses.
        return float(value) if value.isascii() else None
    from email.utils import parsedate_to_datetime  # an HTTP date: rare, and a 5 ms import

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_policy(settings: Settings) -> RetryPolicy | None:
    """The run's retry policy (``--retries``, ``--backoff``, ``--max-retry-wait``); None: off."""
    if not settings.retries:
        return None
    return RetryPolicy(
        retries=settings.retries, backoff=settings.backoff, max_wait=settings.max_retry_wait
    )
