"""Enough file descriptors for ``-c``: raise the soft RLIMIT_NOFILE, or lower ``-c`` to fit.

Every connection is a descriptor. Under a default ``ulimit -n`` of 256 or 1024, ``-c 1000``
used to turn most URLs into ``connect`` errors ("Too many open files"). At the start of a run
afetch raises its soft limit to what the run needs, up to the hard limit, as Go does for every
program (Go raises it all the way to the hard limit; afetch only as far as it needs, so the
limit stays what it was for the ordinary run). When even the hard limit is too low, the
concurrency is lowered to fit, with one warning line.

What a run needs (:func:`per_request` and :func:`reserved`): for each request in flight, its
socket and one more while it connects (libcurl's threaded resolver wakes the transfer through a
socket pair, and happy eyeballs may race a second socket for the other address family); with
``--save-dir`` the body's file and its host folder, held while the body streams; with
``--cache`` the cache entry being read or written. Besides: :data:`RESERVED`, plus two per
input file. Measured on Linux with 127.0.0.1 URLs held open for 400 ms: 211 descriptors at
``-c 200`` and 21 at ``-c 10`` (a socket per request plus 11), well inside the 443 and 63 this
module reserves for them.
"""

from __future__ import annotations

from typing import NamedTuple

# One count of what a request holds, shared with the engines' connection pools.
from afetch.engine.connections import idle_wanted, per_request

try:
    import resource
except ImportError:  # Windows: no rlimits to raise
    resource = None  # type: ignore[assignment]

#: Descriptors a run holds besides its requests: stdin/stdout/stderr (3); the output, the
#: journal and the copy of the output it syncs (3); the event loop's epoll, self-pipe and
#: signal wake-up (4); the engine's own epoll (1); libcurl's multi handle wake-up pair (2); the
#: ``--save-dir`` pool of 8 threads opening folders (8); and room for what Python, TLS and the
#: resolver configuration open on the way (20). Inputs come on top (see :func:`reserved`).
RESERVED = 3 + 3 + 4 + 1 + 2 + 8 + 20


# A NamedTuple, not a frozen dataclass: the same value at a tenth of the cost at start-up.
class Plan(NamedTuple):
    """What to do: the soft limit to set (None: leave it) and the concurrency to run with."""

    soft: int | None
    concurrency: int


def reserved(*, sources: int) -> int:
    """Descriptors a run needs besides its requests.

    Each input file is open for the run, and opened once more by the background count for the
    progress total.

    >>> reserved(sources=1)
    43
    """
    return RESERVED + 2 * sources


def plan(
    *, concurrency: int, soft: int, hard: int, per_request: int, reserved: int, idle: int = 0
) -> Plan:
    """Raise the soft limit to what ``concurrency`` needs, or lower ``concurrency`` to fit.

    ``idle`` more descriptors (the engine's idle connections) are asked for as far as the hard
    limit allows, never at the cost of a request.

    ``hard`` may be ``resource.RLIM_INFINITY`` (-1 on Linux) or any negative value: no limit.

    >>> plan(concurrency=1000, soft=256, hard=65536, per_request=1, reserved=47)
    Plan(soft=1047, concurrency=1000)
    >>> plan(concurrency=10, soft=1024, hard=4096, per_request=1, reserved=47)
    Plan(soft=None, concurrency=10)
    >>> plan(concurrency=1000, soft=256, hard=512, per_request=1, reserved=47)
    Plan(soft=512, concurrency=465)
    """
    need = per_request * concurrency + reserved
    if need + idle <= soft:
        return Plan(None, concurrency)
    if hard < 0 or need + idle <= hard:
        return Plan(need + idle, concurrency)
    if need <= hard:
        return Plan(hard, concurrency)
    return Plan(hard, _fitting(hard, per_request=per_request, reserved=reserved))


def _fitting(limit: int, *, per_request: int, reserved: int) -> int:
    return max(1, (limit - reserved) // per_request)


def ensure(concurrency: int, *, sources: int, save: bool, cache: bool) -> tuple[int, str | None]:
    """Make room for ``concurrency`` requests; returns the concurrency to use and a warning.

    The warning (None when all is well) says why the concurrency was lowered.
    """
    if resource is None:
        return concurrency, None
    each = per_request(save=save, cache=cache)
    others = reserved(sources=sources)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return concurrency, None
    wanted = plan(
        concurrency=concurrency,
        soft=soft,
        hard=-1 if hard == resource.RLIM_INFINITY else hard,
        per_request=each,
        reserved=others,
        idle=idle_wanted(concurrency),
    )
    limit = soft
    if wanted.soft is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted.soft, hard))
            limit = wanted.soft
        except (ValueError, OSError):
            pass  # macOS refuses more than its own cap under an unlimited hard limit
    if each * concurrency + others <= limit:
        return concurrency, None
    fits = _fitting(limit, per_request=each, reserved=others)
    need = each * concurrency + others
    return fits, (
        f"-c {concurrency} lowered to {fits}: {concurrency} connections need about {need} "
        f"open files and at most {limit} are allowed (ulimit -Hn)"
    )
