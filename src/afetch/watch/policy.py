"""What counts as ok, and when a run fails: ``--accept``, ``--accept-timeouts``, ``--fail-on``,
``--fail-after``.

The judgement is on the final outcome of a URL, after its retries: which outcomes are retried
stays the retry policy's (afetch.schedule.retry, by error type and status). ``--accept 429``
makes a 429 that is still a 429 after the retries ok; it does not stop the retries, which honour
the server's Retry-After as before. ``--accept-timeouts`` likewise: a timeout is retried as
usual, and only the last one is judged ok.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from afetch._record import Record

#: ``--fail-on``: which not-ok URLs make the exit code 1.
FAIL_ON = ("any", "new", "none")

_RANGE = re.compile(r"\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?")


class WatchError(Exception):
    """An option of afetch.watch cannot be used; the message is one line for stderr."""


class PolicyError(WatchError, ValueError):
    """An option of the exit policy cannot be understood; one line for stderr."""


def parse_accept(text: str) -> frozenset[int]:
    """The statuses of ``--accept``: codes and inclusive ranges, comma-separated.

    >>> sorted(parse_accept("200-204,301, 429"))
    [200, 201, 202, 203, 204, 301, 429]
    >>> parse_accept("200..299")
    Traceback (most recent call last):
    ...
    afetch.watch.policy.PolicyError: expected statuses such as 200-299,301,429, got '200..299'
    """
    statuses: set[int] = set()
    for part in text.split(","):
        match = _RANGE.fullmatch(part)
        low = int(match[1]) if match else 0
        high = int(match[2] or low) if match else 0
        if match is None or not 100 <= low <= high <= 599:
            shown = text if len(text) <= 60 else text[:59] + "…"
            raise PolicyError(f"expected statuses such as 200-299,301,429, got {shown!r}")
        statuses.update(range(low, high + 1))
    return frozenset(statuses)


@dataclass(frozen=True, slots=True)
class Accept:
    """The verdict before ``--ok-if``: ``statuses`` (None: below 400) without an error, or a
    timeout when ``timeouts``.

    >>> from afetch._errors import FetchError
    >>> accept = Accept(frozenset({200, 429}), timeouts=True)
    >>> accept.ok(Record(url="u", status=429)), accept.ok(Record(url="u", status=301))
    (True, False)
    >>> accept.ok(Record(url="u", error=FetchError("timeout", "30 s")))
    True
    """

    statuses: frozenset[int] | None = None
    timeouts: bool = False

    def ok(self, record: Record) -> bool:
        error = record.error
        if error is not None:
            return self.timeouts and error.type == "timeout"
        status = record.status
        if status is None:
            return False
        return status < 400 if self.statuses is None else status in self.statuses


@dataclass(frozen=True, slots=True)
class ExitPolicy:
    """``--fail-on`` and ``--fail-after``: which not-ok URLs make a finished run exit 1.

    ``any``: a URL not ok for ``after`` runs in a row or more (1: any URL not ok, afetch's
    default). ``new``: a URL whose run of failures reaches ``after`` in this very run (it was
    ok before, or new, or fewer runs failing): a failure is reported once, not every night.
    ``none``: never (usage and output errors, signals keep their codes). With ``after`` > 1 or
    ``new`` a URL's earlier runs matter: those need ``--history``.
    """

    fail_on: str = "any"
    after: int = 1

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON:
            raise PolicyError(f"--fail-on must be one of {', '.join(FAIL_ON)}")
        if self.after < 1:
            raise PolicyError("--fail-after must be at least 1")

    @property
    def needs_history(self) -> bool:
        return self.fail_on == "new" or self.after > 1

    def fails(self, *, streak: int) -> bool:
        """Whether a URL not ok for ``streak`` runs in a row makes the run fail.

        >>> ExitPolicy("new", 3).fails(streak=3), ExitPolicy("new", 3).fails(streak=4)
        (True, False)
        >>> ExitPolicy("any", 3).fails(streak=4), ExitPolicy("none").fails(streak=9)
        (True, False)
        """
        if self.fail_on == "none":
            return False
        if self.fail_on == "new":
            return streak == self.after
        return streak >= self.after
