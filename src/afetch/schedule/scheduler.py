"""The scheduler: bounded concurrency over a lazy stream of URLs; records in completion order.

The public entry (:func:`schedule`, :func:`schedule_batches`): it runs a
:class:`afetch.schedule.run.Run` in a producer task and hands its records to the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from afetch._clock import Clock
from afetch._record import Record
from afetch._settings import Settings
from afetch.attempt.fetcher import Fetcher
from afetch.schedule.hosts import BusiestHosts
from afetch.schedule.job import Item
from afetch.schedule.results import DONE, Results
from afetch.schedule.run import Run

if TYPE_CHECKING:
    from afetch.schedule.confirm import Verdicts
    from afetch.schedule.gauge import Gauge

__all__ = ["Item", "schedule", "schedule_batches"]


def schedule(
    urls: Iterable[Item] | AsyncIterable[Item],
    *,
    fetcher: Fetcher,
    settings: Settings,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
) -> AsyncIterator[Record]:
    """Records for ``urls`` through ``fetcher``, within the bounds of ``settings``.

    The engine of :func:`afetch.fetch` (see there); ``clock`` defaults to the running loop.
    ``gauge`` (:class:`afetch.schedule.gauge.Gauge`) is kept up to date for a progress display;
    ``busiest`` is filled at the end with the busiest hosts' learned limits (``per_host="auto"``).
    """
    options = {"stop": stop, "clock": clock, "gauge": gauge, "busiest": busiest}
    return _schedule(urls, fetcher=fetcher, settings=settings, batches=False, **options)


def schedule_batches(
    urls: Iterable[Item] | AsyncIterable[Item],
    *,
    fetcher: Fetcher,
    settings: Settings,
    stop: asyncio.Event | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
    verdicts: Verdicts | None = None,
) -> AsyncIterator[list[Record]]:
    """:func:`schedule`, giving the records finished since the last batch as one list: for a
    consumer that handles them together (the command line's writer), one step per batch rather
    than per record. A batch counts as taken when the next one is asked for. ``verdicts``: the
    command line's rule for ok (--accept, --ok-if), which ``confirm`` asks."""
    options = {"stop": stop, "gauge": gauge, "busiest": busiest, "verdicts": verdicts}
    return _schedule(urls, fetcher=fetcher, settings=settings, batches=True, **options)


async def _schedule(
    urls: Iterable[Item] | AsyncIterable[Item],
    *,
    fetcher: Fetcher,
    settings: Settings,
    batches: bool,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    gauge: Gauge | None = None,
    busiest: BusiestHosts | None = None,
    verdicts: Verdicts | None = None,
) -> AsyncIterator[Any]:
    results = Results()
    crashes: list[BaseException] = []

    def crashed(exc: BaseException) -> None:
        # A failure in a callback, where no task carries it: the run ends with it. (Callbacks
        # come from attempts, which only start once the producer below runs.)
        crashes.append(exc)
        producer.cancel()

    # Entered by the producer below before anything can start a task in it.
    group = asyncio.TaskGroup()
    run = Run(
        settings,
        fetcher,
        results,
        group=group,
        clock=asyncio.get_running_loop() if clock is None else clock,
        crashed=crashed,
        gauge=gauge,
        busiest=busiest,
        verdicts=verdicts,
    )

    async def produce() -> None:
        try:
            async with group:
                try:
                    await run.read(urls)
                except Exception:
                    # The input broke off (an I/O error, say): the URLs already read still get
                    # their records before the error is raised.
                    await run.all_done.wait()
                    raise
                await run.all_done.wait()
                run.retire_workers()
        except BaseExceptionGroup as errors:
            # The input failed (an unreadable file, say): let callers catch it by its own type.
            if len(errors.exceptions) == 1 and isinstance(errors.exceptions[0], Exception):
                raise errors.exceptions[0] from None
            raise
        finally:
            run.close()

    producer = asyncio.create_task(produce(), name="afetch-scheduler")
    # A done-callback rather than `finally`: it runs even if the task is cancelled before it starts.
    producer.add_done_callback(lambda _: results.put(DONE))
    stopper = None
    if stop is not None:
        stopper = asyncio.create_task(stop.wait())
        stopper.add_done_callback(lambda _: producer.cancel())
    try:
        # The records that came in one turn of the loop, taken without a wait each.
        async for batch in results.batches():
            if batches:
                yield batch
                run.taken(len(batch))  # when the next batch is asked for
            else:
                for record in batch:
                    run.taken()
                    yield record
        if crashes:
            raise crashes[0]
        # After a stop: finished records held behind an unfinished one (--ordered).
        drained = run.drain()
        if batches:
            if drained:
                yield drained
        else:
            for record in drained:
                yield record
        if not (stop is not None and stop.is_set()):
            await producer  # re-raise what ended the producer (an unreadable input, say)
    finally:
        for task in (producer, stopper):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
