"""The public ``afetch.fetch``: records for a lazy stream of URLs, as each completes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from afetch._clock import Clock
from afetch._record import Record
from afetch._settings import Settings
from afetch._spec import RequestSpec
from afetch.attempt.fetcher import Fetcher
from afetch.engine.base import Engine
from afetch.engine.factory import open_engine
from afetch.engine.guard import AddressCheck
from afetch.schedule.gauge import Gauge
from afetch.schedule.hosts import BusiestHosts
from afetch.schedule.scheduler import schedule, schedule_batches

if TYPE_CHECKING:
    import httpx

    from afetch.schedule.confirm import Verdicts


def _open_fetcher(
    settings: Settings, transport: httpx.AsyncBaseTransport | None, clock: Clock | None = None
) -> tuple[Fetcher, Engine, AddressCheck | None]:
    """The fetcher of one run, the engine under it and its ``--no-private`` check, which the
    run closes at its end; their deadlines are times on ``clock`` (the loop's by default), as
    the scheduler's timers are."""
    collect = None
    if settings.include:  # what the engine gathers about each transfer for those keys
        from afetch.attempt.include import engine_collect

        collect = engine_collect(settings.include)
    engine = open_engine(settings, transport, collect, clock=clock)
    # A transport already behind a guard checks addresses itself (tests pass their own policy).
    check = None
    if settings.no_private and not _guarded(transport):
        check = AddressCheck(lookups=settings.concurrency)
    return Fetcher(engine, settings, address_check=check, clock=clock), engine, check


async def _close(engine: Engine, check: AddressCheck | None) -> None:
    try:
        await engine.aclose()
    finally:
        if check is not None:
            check.close()


def _guarded(transport: httpx.AsyncBaseTransport | None) -> bool:
    if transport is None:
        return False
    from afetch.engine.guard_transport import PrivateAddressGuard

    return isinstance(transport, PrivateAddressGuard)


async def fetch(
    urls: Iterable[str | RequestSpec] | AsyncIterable[str | RequestSpec],
    *,
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
    **options: Any,
) -> AsyncIterator[Record]:
    """Fetch ``urls`` concurrently and yield one :class:`Record` per URL, as each completes.

    ``urls`` may be any iterable or async iterable of URL strings or :class:`RequestSpec` (a
    method, headers, a body, ``meta``); it is consumed lazily, and at most
    ``concurrency`` fetches (and as many finished records) exist at any moment. Options are the
    fields of :class:`Settings`, given either as ``settings=`` or as keywords. Setting ``stop``
    ends the run early: nothing new starts, fetches in flight are cancelled, and the records
    already completed are still yielded. A transport passed in is not closed. ``clock`` (tests)
    replaces the event loop as the source of time for pacing, retry waits and timeouts.

    Transient failures are retried (``retries``) after a backoff during which the URL holds no
    slot; ``per_host``, ``rate``, ``host_rate`` and ``max_host_errors`` add per-host politeness,
    and ``rate_limit_headers`` paces each host by the rate-limit fields it sends. With
    ``confirm``, failures are tried once more at the end after ``confirm_delay`` seconds, and
    their records say ``confirmed`` (see :mod:`afetch.schedule.confirm`).
    URLs of a host at its limit are parked (at most ``max(4 * concurrency, 20000)`` URLs wait at a
    time, see :mod:`afetch.schedule.affinity`) so the other hosts keep every free slot busy; the
    slot an attempt frees with a whole response goes to its host's next waiting URL first, on
    the same connection.
    With ``ordered``, records come in input order from a bounded reorder window (see
    :mod:`afetch.schedule.ordering`). A ``gauge``
    (:class:`afetch.schedule.gauge.Gauge`) is kept up to date with the attempts in flight, for a
    display. ``per_host="auto"`` learns a limit per host from its answers (see
    :mod:`afetch.schedule.autolimit`); ``busiest`` (:class:`afetch.schedule.hosts.BusiestHosts`)
    then gets the busiest hosts' limits at the end.

    >>> import asyncio, httpx, afetch
    >>> mock = httpx.MockTransport(lambda request: httpx.Response(200, text="hi"))
    >>> async def main():
    ...     return [r.bytes async for r in afetch.fetch(["http://127.0.0.1/"], transport=mock)]
    >>> asyncio.run(main())
    [2]
    """
    if settings is None:
        settings = Settings(**options)
    elif options:
        raise TypeError("pass either settings= or keyword options, not both")
    fetcher, engine, check = _open_fetcher(settings, transport, clock)
    records = schedule(
        urls,
        fetcher=fetcher,
        settings=settings,
        stop=stop,
        clock=clock,
        gauge=gauge,
        busiest=busiest,
    )
    try:
        # aclosing: an early exit stops the scheduler before its transport is closed.
        async with contextlib.aclosing(records):
            async for record in records:
                yield record
    finally:
        await _close(engine, check)


async def fetch_batches(
    urls: Iterable[str | RequestSpec] | AsyncIterable[str | RequestSpec],
    *,
    settings: Settings,
    stop: asyncio.Event | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
    verdicts: Verdicts | None = None,
) -> AsyncIterator[list[Record]]:
    """:func:`fetch` for the command line: the records finished since the last batch, as a
    list (see :func:`afetch.schedule.scheduler.schedule_batches`), on the default engine;
    ``verdicts`` is its rule for ok (``--accept``, ``--ok-if``), which ``confirm`` asks."""
    fetcher, engine, check = _open_fetcher(settings, None)
    batches = schedule_batches(
        urls,
        fetcher=fetcher,
        settings=settings,
        stop=stop,
        gauge=gauge,
        busiest=busiest,
        verdicts=verdicts,
    )
    try:
        async with contextlib.aclosing(batches):
            async for batch in batches:
                yield batch
    finally:
        await _close(engine, check)
