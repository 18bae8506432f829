"""What a server's rate-limit fields allow: parsing them into one :class:`Quota` (pure).

``--rate-limit-headers`` paces each host by what it says (``afetch.schedule.hosts.Pacer``
keeps the count). Understood, most recent first:

* the IETF httpapi draft "RateLimit header fields for HTTP", -08 and later: structured lists
  ``RateLimit: "default";r=0;t=30`` (``r`` requests remaining, ``t`` seconds to the reset) and
  ``RateLimit-Policy: "default";q=100;w=60`` (``q`` requests per window of ``w`` seconds);
* its -07 form, a dictionary ``RateLimit: limit=100, remaining=0, reset=30`` and
  ``RateLimit-Policy: 100;w=60``;
* its older separate fields ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``,
  and the common ``X-RateLimit-*`` (and ``X-Rate-Limit-*``) fields;
* ``Retry-After`` on a 429 or 503 (the fetcher keeps it only for those): none remaining until
  then.

A reset in the legacy fields is seconds to wait (the drafts, most APIs) or a Unix time (GitHub,
Twitter): a value of at least :data:`EPOCH_FROM` cannot mean a wait of over 30 years, so it is
a time (and one of at least 10^12 a time in milliseconds). With several policies the most
restrictive one counts. Whatever is malformed is ignored, field by field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from afetch.schedule.retry import parse_retry_after

#: A legacy reset at least this large is a Unix time (2001-09-09), not seconds to wait.
EPOCH_FROM = 1_000_000_000
#: ... and at least this large, a Unix time in milliseconds.
EPOCH_MS_FROM = 1_000_000_000_000
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_NUMBER = re.compile(r"[0-9]{1,16}(\.[0-9]{1,6})?")
_LEGACY_PREFIXES = ("ratelimit-", "x-ratelimit-", "x-rate-limit-")


def _split(separator: str) -> str:
    """A pattern for the parts between ``separator``s, a quoted string counting as one piece."""
    return r'(?:"(?:[^"\\]|\\.)*"|[^' + separator + "])+"


@dataclass(frozen=True, slots=True)
class Quota:
    """What one response said: requests ``remaining`` in the current window, seconds to its
    ``reset``, and the policy: ``limit`` requests per ``window`` seconds. None: not said."""

    remaining: int | None = None
    reset: float | None = None
    limit: int | None = None
    window: float | None = None


def read_quota(
    headers: Iterable[tuple[str, str]] | None, retry_after: str | None, *, now: float
) -> Quota | None:
    """The quota the fields in ``headers`` (lower-case names) and ``retry_after`` state, at Unix
    time ``now``; None if they state nothing usable.

    >>> read_quota([("ratelimit", '"default";r=0;t=30'),
    ...             ("ratelimit-policy", '"default";q=100;w=60')], None, now=0.0)
    Quota(remaining=0, reset=30.0, limit=100, window=60.0)
    >>> read_quota([("x-ratelimit-remaining", "4"), ("x-ratelimit-reset", "1700000060")],
    ...            None, now=1700000000.0)
    Quota(remaining=4, reset=60.0, limit=None, window=None)
    >>> read_quota([], "7", now=0.0)
    Quota(remaining=0, reset=7.0, limit=None, window=None)
    >>> read_quota([("ratelimit", "garbage;;")], None, now=0.0) is None
    True
    """
    fields: dict[str, str] = {}
    for name, value in headers or ():
        if name.startswith(("ratelimit", "x-ratelimit-", "x-rate-limit-")):
            fields.setdefault(name, value)  # the first of repeated fields
    quota = _structured(fields) if "ratelimit" in fields else None
    if quota is None:
        quota = _legacy(fields, now=now)
    if retry_after is not None:
        wait = parse_retry_after(retry_after, now=now)
        if wait is not None:
            quota = quota or Quota()
            reset = wait if quota.reset is None else max(wait, quota.reset)
            quota = Quota(0, reset, quota.limit, quota.window)
    if quota is None or (quota.remaining is None and quota.limit is None):
        return None
    return quota


# -- the drafts' structured fields (RFC 9651, the little of it these fields use) ---------------


def _members(value: str) -> list[tuple[str, dict[str, str]]]:
    """A list's members: (the bare item as written, its parameters); quoted strings kept whole."""
    members = []
    for member in re.findall(_split(","), value):
        parts = [part.strip() for part in re.findall(_split(";"), member)]
        if not parts:
            continue
        item, params = parts[0], parts[1:]
        parameters = {}
        for param in params:
            key, _, val = param.partition("=")
            parameters.setdefault(key.strip(), val.strip())
        members.append((item.strip(), parameters))
    return members


def _integer(text: str | None) -> int | None:
    if text is None or not _INTEGER.fullmatch(text.strip()):
        return None
    return int(text)


def _seconds(text: str | None) -> float | None:
    number = _integer(text)
    return None if number is None or number < 0 else float(number)


def _structured(fields: dict[str, str]) -> Quota | None:
    members = _members(fields["ratelimit"])
    if members and "=" in members[0][0]:  # draft -07: a dictionary limit=, remaining=, reset=
        said = {key.strip(): val for key, _, val in (m[0].partition("=") for m in members)}
        remaining = _integer(said.get("remaining"))
        policy = _members(fields.get("ratelimit-policy", ""))
        window = _seconds(policy[0][1].get("w")) if policy else None
        return _quota(remaining, _seconds(said.get("reset")), _integer(said.get("limit")), window)
    policies = {item: params for item, params in _members(fields.get("ratelimit-policy", ""))}
    chosen: tuple[int, float | None, str] | None = None
    for item, params in members:
        remaining = _integer(params.get("r"))
        if remaining is None:
            continue
        reset = _seconds(params.get("t"))
        # The most restrictive: fewest remaining; of those, the longest wait.
        if chosen is None or (remaining, -(reset or 0.0)) < (chosen[0], -(chosen[1] or 0.0)):
            chosen = (remaining, reset, item)
    if chosen is None:
        return None
    remaining, reset, item = chosen
    policy = policies.get(item) or (next(iter(policies.values())) if len(policies) == 1 else {})
    return _quota(remaining, reset, _integer(policy.get("q")), _seconds(policy.get("w")))


def _legacy(fields: dict[str, str], *, now: float) -> Quota | None:
    for prefix in _LEGACY_PREFIXES:
        remaining = _integer(fields.get(prefix + "remaining"))
        if remaining is None:
            continue
        reset = _reset(fields.get(prefix + "reset"), now=now)
        return _quota(remaining, reset, _integer(fields.get(prefix + "limit")), None)
    return None


def _reset(text: str | None, *, now: float) -> float | None:
    """A legacy reset: seconds to wait, or a Unix time (seconds or milliseconds)."""
    if text is None or not _NUMBER.fullmatch(text := text.strip()):
        return None
    value = float(text)
    if value >= EPOCH_MS_FROM:
        value = value / 1000.0 - now
    elif value >= EPOCH_FROM:
        value -= now
    return max(0.0, value)


def _quota(
    remaining: int | None, reset: float | None, limit: int | None, window: float | None
) -> Quota:
    return Quota(
        None if remaining is None else max(0, remaining),
        reset,
        None if limit is None or limit < 1 else limit,
        window or None,
    )
