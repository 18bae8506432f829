"""``--confirm``: which failures are tried once more at the end of a run, and how (pure policy).

A record that failed after its retries is held back (its URL holds no slot meanwhile). When
nothing else is in flight or waiting (at the end of the run; with ``--ordered`` also when the
output waits on a held record), the held URLs are tried once more after ``confirm_delay``
seconds, and the record is that try's, with ``confirmed``: True if it failed again, False if
the first failure was a blip. A HEAD is confirmed with a GET (servers that mishandle HEAD are
common: a 405 or 404 to HEAD, a 200 to GET). The scheduler (afetch.schedule.run) does the
holding and the timing; this module says which and what.

"Failed" is the run's one rule for ``ok`` (:class:`Verdicts`: ``--accept``,
``--accept-timeouts``, ``--ok-if``, as the exit code judges), or the default rule without one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from afetch._errors import ErrorTrait, error_types_with
from afetch._record import Record
from afetch._spec import RequestSpec
from afetch.schedule.job import Item
from afetch.schedule.retry import IDEMPOTENT_METHODS, NOT_SENT_ERRORS

#: Error types another try cannot change (an invalid URL, a blocked address, a host given up).
SETTLED_ERRORS = error_types_with(ErrorTrait.SETTLED)
#: Failures held at most at a time: at that many, a confirming round starts at once (memory
#: stays bounded on a list of millions of dead links).
HOLD_LIMIT = 10_000


class Verdicts(Protocol):
    """The run's rule for ``ok`` (afetch.watch.judge.Verdicts), given by the command line."""

    @property
    def blocking(self) -> bool:
        """Whether :meth:`decide` blocks (``--ok-if``'s jq worker): the run then calls it from
        a thread, off the event loop."""
        ...

    def decide(self, records: list[Record]) -> list[bool]:
        """Each record's ``ok``; the verdict is set on the record too (the writer keeps it)."""
        ...


def worth_confirming(record: Record, ok: bool) -> bool:
    """Whether ``record``, a URL's outcome after its retries, ``ok`` or not, is a failure to
    try once more.

    Every failure (not ``ok``: by default an error, or a status of 400 and up), except the
    settled error types and, for a request that is not idempotent (POST, PATCH), anything but
    a request surely not sent (as for retries: a second POST could do it twice).

    >>> from afetch._record import FetchError
    >>> worth_confirming(Record(url="u", status=503), False)
    True
    >>> worth_confirming(Record(url="u", status=429), True)  # --accept 200-299,429
    False
    >>> worth_confirming(Record(url="u", error=FetchError("invalid_url", "no host")), False)
    False
    >>> worth_confirming(Record(url="u", status=500, method="POST"), False)
    False
    """
    if ok:
        return False
    error = record.error
    if error is not None and error.type in SETTLED_ERRORS:
        return False
    if (record.method or "GET") not in IDEMPOTENT_METHODS:
        return error is not None and error.type in NOT_SENT_ERRORS
    return True


def confirming_request(item: Item, first: Record) -> Item:
    """What the confirming try sends: the same request, but a HEAD as a GET.

    >>> confirming_request("http://a.test/", Record(url="http://a.test/", method="HEAD"))
    RequestSpec(url='http://a.test/', method='GET', headers=(), body=None, body_kind='form', \
meta=None, invalid=None)
    """
    if first.method != "HEAD":
        return item
    if isinstance(item, RequestSpec):
        return replace(item, method="GET")
    return RequestSpec(item, "GET")


def confirmed(first: Record, last: Record, ok: bool) -> Record:
    """The record of a confirmed URL: the confirming try's, ``ok`` or not, saying whether it
    failed too. It is journaled (``--state``) as the first was, whatever method it was sent
    with."""
    return replace(last, confirmed=not ok, key=first.key)
