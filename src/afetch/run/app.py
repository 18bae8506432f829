"""The command-line run: input → scheduler → records → sinks, with signals and exit codes.

Before the first request what the run needs is checked and opened (afetch.run.prepare); what it
shows meanwhile is afetch.run.display; the summary, exit code and reports, afetch.run.finish.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable

from afetch._api import fetch_batches
from afetch._settings import Settings
from afetch._spec import RequestSpec
from afetch._stats import Stats
from afetch.input.reader import InputError, read_urls
from afetch.output.sinks import (
    OutputClosed,
    OutputFailed,
    included_keys,
    make_sink,
    optional_keys,
    output_is_empty,
)
from afetch.output.writer import RecordWriter
from afetch.run.display import (
    count_in_background,
    progress_display,
    shared_terminal,
    terminal_console,
)
from afetch.run.exits import (
    EXIT_OUTPUT,
    EXIT_SIGPIPE,
    EXIT_USAGE,
    error_line,
)
from afetch.run.finish import exit_code, interrupted, print_summary, write_reports
from afetch.run.interrupt import Interrupt
from afetch.run.options import RunOptions
from afetch.run.prepare import prepare
from afetch.schedule.gauge import Gauge
from afetch.schedule.hosts import BusiestHosts

#: After SIGINT/SIGTERM, how long the writer may still take to write the records completed so
#: far before it is abandoned (those records are then neither written nor journaled). The run
#: promises to stop within about a second.
WRITE_GRACE_S = 0.5
_Item = str | RequestSpec


async def run(
    settings: Settings,
    options: RunOptions,
    *,
    urls: Callable[[], AsyncIterator[_Item]] | None = None,
    total: int | None = None,
) -> int:
    """Run one fetch job from the command line; returns the exit code.

    ``urls`` replaces reading ``options.sources`` (the demo uses it), with ``total`` URLs if known.
    """
    prepared = await prepare(settings, options, own_input=urls is None)
    if isinstance(prepared, int):
        return prepared
    settings, fds, stream = prepared.settings, prepared.fds, prepared.stream
    reports, journal, judge = prepared.reports, prepared.journal, prepared.judge
    done = prepared.done
    stats = Stats(total=total)
    # A shard or a resumed run fetches only part of the file: no total beats a wrong one.
    if options.progress and urls is None and options.shard is None and not done:
        count_in_background(fds, stats)
    sink = make_sink(
        stream,
        format=options.format,
        optional=optional_keys(settings),
        include=included_keys(settings),
        header=output_is_empty(stream),
        watch=options.history is not None,
    )
    code: int | None = None
    source = read_urls(fds) if urls is None else urls()
    if options.shard is not None:
        from afetch.input.shard import only_shard  # --shard only: a run without it skips the module

        source = only_shard(source, options.shard)
    if journal is not None and done:
        from afetch.input.journal import skip_done  # --resume only

        source = skip_done(source, journal.earlier, stats)
    gauge = Gauge(attempt_s=settings.timeout) if options.progress else None
    console = terminal_console()
    display = progress_display(stats, gauge, console, settings=settings, options=options)
    # Records are written, journaled and counted by the writer thread (see output/writer.py).
    writer = RecordWriter(
        stream,
        sink,
        stats=stats,
        journal=journal,
        terminal=shared_terminal(display, stream),
        reports=reports,
        judge=judge if judge is not None and judge.judges else None,
    )
    busiest = BusiestHosts() if settings.per_host == "auto" else None
    with Interrupt(on_signal=writer.interrupt) as interrupt, display:
        try:
            try:
                async for batch in fetch_batches(
                    source,
                    settings=settings,
                    stop=interrupt.stop,
                    gauge=gauge,
                    busiest=busiest,
                    # --confirm asks the judge's rule for ok: one way to decide it.
                    verdicts=None if judge is None else judge.verdicts,
                ):
                    # The fast path never awaits; put_many() waits for room (holding the scheduler
                    # slots of the batch) and gives up when a signal comes: the records not
                    # handed over by then are dropped.
                    handed = writer.offer_many(batch)
                    if handed < len(batch):
                        handed += await writer.put_many(batch[handed:])
                    stats.handed += handed
            finally:
                await writer.close(stop=interrupt.stop, grace=WRITE_GRACE_S)
            writer.check()
        except OutputClosed:
            code = EXIT_SIGPIPE
        except OutputFailed as exc:
            error_line(f"cannot write records: {exc}")
            code = EXIT_OUTPUT
        except InputError as exc:
            error_line(str(exc))
            code = EXIT_USAGE
    stats.finish()
    finished = code is None and interrupt.signum is None  # all input read, every record written
    if journal is not None:
        if finished:
            journal.finish()  # --resume starts anew
        journal.close()  # the writer journals nothing more: it finished or was abandoned
    failed = None
    if judge is not None:
        from afetch.watch.policy import WatchError  # loaded only by a run that judges

        try:
            if finished:
                failed = judge.failed(
                    all_ok=stats.ok == stats.done and stats.earlier_ok == stats.earlier
                )
        except WatchError as exc:  # --history's last rows could not be written (disk full)
            error_line(str(exc))
            code = EXIT_OUTPUT
        try:
            judge.close(finished=finished and code is None, abandoned=writer.abandoned)
        except WatchError as exc:
            error_line(str(exc))
            code = EXIT_OUTPUT
        for line in judge.notes():
            print(f"afetch: warning: {line}", file=sys.stderr)
    if not writer.abandoned:
        # An abandoned writer is still blocked in write() on this descriptor: leave it open (the
        # process is about to exit) rather than let its number be reused under the thread.
        sink.close()
    # The reader left (stay quiet, as `cmd | head` expects), or the error line said it all.
    if code not in (EXIT_SIGPIPE, EXIT_USAGE, EXIT_OUTPUT) and not options.quiet:
        notes = []  # rows about the run itself, after the counts
        if interrupt.signum is not None:
            whole = urls is None and options.shard is None and not done
            notes.append(interrupted(stats, options, whole_input=whole, demo=urls is not None))
        print_summary(stats, busiest, console, notes=notes)
    final = exit_code(code, interrupt.signum, stats, failed)
    if reports is not None:  # also for a run stopped by a signal or a closed output
        final = write_reports(reports, stats, final, interrupt.signum)
    return final
