"""The command-line run: input → scheduler → records → sinks, with signals and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import stat
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from afetch._api import fetch_batches
from afetch._settings import Settings
from afetch._spec import RequestSpec
from afetch._stats import Stats
from afetch.input.journal import Journal, JournalBusy, skip_done
from afetch.input.reader import InputError, count_urls, open_sources, read_urls, url_counter
from afetch.output.plain import PlainProgress, interrupted_note, summary_text
from afetch.output.sinks import (
    OutputClosed,
    OutputFailed,
    included_keys,
    make_sink,
    open_output,
    optional_keys,
    output_is_empty,
)
from afetch.output.writer import RecordWriter
from afetch.reports import ReportError
from afetch.run import fdlimit as fdlimit
from afetch.run.exits import (
    EXIT_NOT_OK,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_SIGPIPE,
    EXIT_USAGE,
    error_line,
)
from afetch.run.paths import path_problem
from afetch.run.signals import SIGNAL_EXITS, note_signal, restore_exit_handlers
from afetch.schedule.gauge import Gauge
from afetch.schedule.hosts import BusiestHosts
from afetch.watch.judge import Judge, open_judge
from afetch.watch.policy import WatchError

if TYPE_CHECKING:
    from rich.console import Console

    from afetch.input.shard import Shard
    from afetch.reports.collect import Reports

try:
    import fcntl
except ImportError:  # Windows: the stdout check below is skipped (docs/install.md)
    fcntl = None  # type: ignore[assignment]

#: After SIGINT/SIGTERM, how long the writer may still take to write the records completed so
#: far before it is abandoned (those records are then neither written nor journaled). The run
#: promises to stop within about a second.
WRITE_GRACE_S = 0.5
_Item = str | RequestSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """What the command line adds around the core: where input comes from and what is shown."""

    sources: tuple[str, ...]
    output: str | None = None
    progress: bool = False
    quiet: bool = False
    #: ``--format``: jsonl or csv.
    format: str = "jsonl"
    #: ``--state``: the journal of completed URLs.
    state: str | None = None
    #: ``--resume``: skip the URLs the journal holds, append to it and to ``-o``.
    resume: bool = False
    #: ``--shard``: keep only this part of the input.
    shard: Shard | None = None
    #: ``--progress-interval``: seconds between progress reports when stderr is not a terminal.
    progress_interval: float = 10.0
    #: Other files the run reads (``-d``/``--json @FILE``): no output may be one of them.
    reads: tuple[str, ...] = ()
    #: ``--report KIND=PATH``: (kind, path) pairs, written when the run ends (afetch.reports).
    reports: tuple[tuple[str, str], ...] = ()
    # afetch.watch: how records are judged and remembered, and when the run fails.
    #: ``--history``: the store of each URL's recent outcomes (change, streak, since).
    history: str | None = None
    #: ``--fail-on``: any, new or none; ``--fail-after``: runs in a row a URL must fail.
    fail_on: str = "any"
    fail_after: int = 1
    #: ``--accept``: the statuses that are ok (None: below 400); ``--accept-timeouts``.
    accept: frozenset[int] | None = None
    accept_timeouts: bool = False
    #: ``--ok-if``: a jq expression deciding each record's ok.
    ok_if: str | None = None


def _count_in_background(fds: Sequence[int], stats: Stats) -> None:
    """Fill in the total for the progress display without delaying the first request; only
    regular files are counted (reading a pipe would take its lines from the run)."""
    try:
        counter = url_counter(fds)  # before the reader thread starts: it notes the offsets
    except OSError:
        return
    if counter is None:
        return

    def count() -> None:
        with contextlib.suppress(OSError):
            stats.total = counter()

    threading.Thread(target=count, name="afetch-count", daemon=True).start()


class _Interrupt:
    """Turns SIGINT/SIGTERM/SIGHUP into a graceful stop; remembers which signal came first."""

    def __init__(self, *, on_signal: Callable[[], None] | None = None) -> None:
        self.stop = asyncio.Event()
        self.signum: int | None = None
        self._on_signal_too = on_signal

    def __enter__(self) -> _Interrupt:
        loop = asyncio.get_running_loop()
        self._previous: dict[int, object] = {}
        for signum in SIGNAL_EXITS:
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except NotImplementedError:  # Windows' loops: a plain handler that wakes the loop
                self._previous[signum] = signal.signal(
                    signum, lambda s, _: loop.call_soon_threadsafe(self._on_signal, s)
                )
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNAL_EXITS:
            if signum in self._previous:
                signal.signal(signum, self._previous[signum])  # type: ignore[arg-type]
            else:
                loop.remove_signal_handler(signum)
        # remove_signal_handler restores Python's default (a KeyboardInterrupt traceback for
        # SIGINT); under exit_on_signals a signal from here on ends the run at once.
        restore_exit_handlers()

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        note_signal(signum)  # a later signal after this block ends exits with this one's code
        self.stop.set()
        if self._on_signal_too is not None:
            self._on_signal_too()


def _output_problem(
    settings: Settings, options: RunOptions, fds: Sequence[int], sources: Sequence[str]
) -> str | None:
    """Why records could not go where they are meant to, or a path would be written over;
    checked before anything is opened for writing."""
    if (options.output is None or options.output == "-") and fcntl is not None:
        try:
            writable = fcntl.fcntl(1, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
        except OSError:
            writable = False
        if not writable:
            return "stdout is closed or read-only; use -o FILE"
    return path_problem(
        sources=sources,
        source_fds=fds,
        output=options.output,
        state=options.state,
        cache_dir=settings.cache_dir,
        save_dir=settings.save_dir,
        cacert=settings.cacert,
        body_files=options.reads,
        reports=options.reports,
        history=options.history,
    )


def _make_dirs(settings: Settings, options: RunOptions) -> str | None:
    """Create the folders named by --cache and --save-dir, and the missing parents of -o and
    --state (so a cron line's `-o "out/$(date +%F).jsonl"` works on its first night, as
    curl's --create-dirs); an error message if one cannot be."""
    named = (options.output, options.state, options.history, *(p for _, p in options.reports))
    parents = [os.path.dirname(path) for path in named if path]
    for folder in (settings.cache_dir, settings.save_dir, *parents):
        if not folder or folder == "-":
            continue
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            return f"cannot create {folder}: {exc.strerror or exc}"
    return None


async def _open_journal(options: RunOptions) -> Journal | None:
    """Lock the --state journal, and read it for --resume (in a thread: it can take seconds)."""
    if options.state is None:
        return None
    journal = await asyncio.to_thread(Journal, options.state, resume=options.resume)
    if journal.restarted and not options.quiet:
        print(
            f"afetch: {options.state}: previous run finished; starting a new run", file=sys.stderr
        )
    elif journal.earlier.done and not options.quiet:
        print(
            f"afetch: resuming: {len(journal.earlier.done)} URLs already done in {options.state}",
            file=sys.stderr,
        )
    return journal


async def _open_judge(
    settings: Settings, options: RunOptions, journal: Journal | None
) -> Judge | None:
    """The judge of records (afetch.watch), opening and locking --history (in a thread)."""
    return await asyncio.to_thread(
        open_judge,
        history=options.history,
        # A resumed run is the same run: the store keeps its number, no URL is counted twice.
        resume=journal is not None and options.resume and not journal.restarted,
        shard="" if options.shard is None else f"{options.shard.index}/{options.shard.count}",
        fail_on=options.fail_on,
        fail_after=options.fail_after,
        accept=options.accept,
        accept_timeouts=options.accept_timeouts,
        ok_if=options.ok_if,
        optional=optional_keys(settings),
        include=included_keys(settings),
    )


def _fit_descriptors(settings: Settings, *, sources: int) -> Settings:
    """Raise the open files limit for ``-c``, or lower ``-c`` to fit (see run/fdlimit.py)."""
    concurrency, warning = fdlimit.ensure(
        settings.concurrency,
        sources=sources,
        save=settings.save_dir is not None,
        cache=settings.cache_dir is not None,
    )
    if warning is not None:
        # Also under -q, which silences progress and summary, never trouble: the run does less
        # than was asked. (wget2 -nv still warns; curl -s hides warnings with its errors.)
        print(f"afetch: warning: {warning}", file=sys.stderr)
    if concurrency == settings.concurrency:
        return settings
    return dataclasses.replace(settings, concurrency=concurrency)


def _terminal_console() -> Console | None:
    """Rich, for a terminal only: logs, pipes and cron mail get plain text, and a run whose
    stderr is not a terminal does not even import Rich (tens of ms of start-up). GitHub
    Actions' log is no terminal either, whatever a pty wrapper says: no live table there."""
    if sys.stderr is None or not sys.stderr.isatty() or _on_github_actions():
        return None
    from rich.console import Console

    return Console(stderr=True)


def _progress_display(
    stats: Stats,
    gauge: Gauge | None,
    console: Console | None,
    *,
    settings: Settings,
    options: RunOptions,
) -> contextlib.AbstractContextManager[object]:
    if gauge is None:
        return contextlib.nullcontext()
    if console is None:
        return PlainProgress(stats, gauge, interval=options.progress_interval, file=sys.stderr)
    from afetch.output.terminal import progress_display

    return progress_display(
        stats, gauge, console, concurrency=settings.concurrency, interval=options.progress_interval
    )


def _shared_terminal(
    display: object, stream: BinaryIO
) -> Callable[[], contextlib.AbstractContextManager[None]] | None:
    """The live table's hold for writing records above it, when they go to its terminal.

    ``afetch urls.txt`` on a terminal: records and the table share one screen, and a redraw
    would erase or cut the records written since the last frame. Anywhere else (a file, a
    pipe, another terminal) records are written as they are, at no cost.
    """
    above = getattr(display, "above", None)
    if above is None:
        return None
    try:
        out, err = os.fstat(stream.fileno()), os.fstat(2)
    except (OSError, ValueError):
        return None
    same = stat.S_ISCHR(out.st_mode) and stat.S_ISCHR(err.st_mode) and out.st_rdev == err.st_rdev
    return above if same else None


def _print_summary(
    stats: Stats,
    busiest: BusiestHosts | None,
    console: Console | None,
    *,
    notes: list[tuple[str, str]],
) -> None:
    rows = None if busiest is None else busiest.rows
    if console is None:
        print(summary_text(stats, busiest=rows, notes=notes), file=sys.stderr)
        return
    from afetch.output.terminal import summary_view

    console.print(summary_view(stats, busiest=rows, notes=notes))


def _interrupted(
    stats: Stats, options: RunOptions, *, whole_input: bool, demo: bool
) -> tuple[str, str]:
    """The summary's note for a stopped run. The total is the one the progress display counted,
    or counted now for files read whole (not stdin, a shard or a resumed run: no total beats a
    wrong one). The demo's URLs are made up: nothing to resume."""
    total = stats.total
    if total is None and whole_input and "-" not in options.sources:
        with contextlib.suppress(OSError, InputError):
            total = count_urls(options.sources)
    return interrupted_note(stats, total=total, state=options.state, hint=not demo)


def _on_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _open_reports(options: RunOptions) -> Reports | None:
    """``--report``'s files, and GitHub Actions' job summary and annotations; None for neither
    (a run without them imports none of afetch.reports' writers). ReportError if a report's
    folder cannot be written."""
    if not options.reports and not _on_github_actions():
        return None
    from afetch.reports.collect import Reports

    return Reports(options.reports, env=os.environ, quiet=options.quiet)


def _discard(reports: Reports | None, code: int) -> int:
    """A run that ends before it starts leaves no report, nor its temporary file."""
    if reports is not None:
        reports.discard()
    return code


def _exit_code(code: int | None, signum: int | None, stats: Stats, failed: bool | None) -> int:
    """The first signal decides; then a code the run ended with (a closed or failed output);
    then the exit policy (--fail-on, --fail-after: afetch.watch.policy); else whether every URL,
    those a resumed run did before included, is ok."""
    if signum is not None:
        return note_signal(signum)
    if code is not None:
        return code
    if failed is not None:
        return EXIT_NOT_OK if failed else EXIT_OK
    all_ok = stats.ok == stats.done and stats.earlier_ok == stats.earlier
    return EXIT_OK if all_ok else EXIT_NOT_OK


def _write_reports(reports: Reports, stats: Stats, code: int, signum: int | None) -> int:
    """Write the reports; the exit code, 74 when one could not be (unless a signal decided)."""
    name = None if signum is None else signal.Signals(signum).name
    problems = reports.finish(stats, exit_code=code, signal=name)
    for problem in problems:
        error_line(problem)
    return EXIT_OUTPUT if problems and code in (EXIT_OK, EXIT_NOT_OK) else code


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
    settings = _fit_descriptors(settings, sources=0 if urls is not None else len(options.sources))
    try:
        fds = open_sources(options.sources) if urls is None else []
    except InputError as exc:
        error_line(str(exc))
        return EXIT_USAGE
    problem = _output_problem(settings, options, fds, options.sources if urls is None else ())
    if problem is not None or (problem := _make_dirs(settings, options)) is not None:
        error_line(problem)
        return EXIT_USAGE
    try:
        reports = _open_reports(options)
    except ReportError as exc:  # one line, exit 2, as for -o
        error_line(str(exc))
        return EXIT_USAGE
    try:
        journal = await _open_journal(options)
    except JournalBusy as exc:
        error_line(str(exc))
        return _discard(reports, EXIT_USAGE)
    except OSError as exc:
        error_line(f"cannot use state file {options.state}: {exc.strerror or exc}")
        return _discard(reports, EXIT_USAGE)
    try:
        judge = await _open_judge(settings, options, journal)
    except WatchError as exc:
        error_line(str(exc))
        if journal is not None:
            journal.close()
        return _discard(reports, EXIT_USAGE)
    done = journal.earlier.done if journal is not None else set()
    try:
        # A resumed run adds to the records of the interrupted one, like `wget -c`.
        stream = open_output(options.output, append=bool(done), format=options.format)
    except OSError as exc:
        error_line(f"cannot write {options.output}: {exc.strerror or exc}")
        if journal is not None:
            journal.close()
        if judge is not None:
            judge.close(finished=False)
        return _discard(reports, EXIT_USAGE)
    if journal is not None:
        journal.sync_output_first(stream.fileno())
    stats = Stats(total=total)
    # A shard or a resumed run fetches only part of the file: no total beats a wrong one.
    if options.progress and urls is None and options.shard is None and not done:
        _count_in_background(fds, stats)
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
        source = skip_done(source, journal.earlier, stats)
    gauge = Gauge(attempt_s=settings.timeout) if options.progress else None
    console = _terminal_console()
    display = _progress_display(stats, gauge, console, settings=settings, options=options)
    # Records are written, journaled and counted by the writer thread (see output/writer.py).
    writer = RecordWriter(
        stream,
        sink,
        stats=stats,
        journal=journal,
        terminal=_shared_terminal(display, stream),
        reports=reports,
        judge=judge if judge is not None and judge.judges else None,
    )
    busiest = BusiestHosts() if settings.per_host == "auto" else None
    with _Interrupt(on_signal=writer.interrupt) as interrupt, display:
        try:
            try:
                async for batch in fetch_batches(
                    source, settings=settings, stop=interrupt.stop, gauge=gauge, busiest=busiest
                ):
                    # The fast path never awaits; put() waits for room (holding the scheduler
                    # slots of the batch) and gives up when a signal comes: the records not
                    # handed over by then are dropped.
                    handed = writer.offer_many(batch)
                    for record in batch[handed:]:
                        if not await writer.put(record):
                            break
                        handed += 1
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
        if finished:
            failed = judge.failed(
                all_ok=stats.ok == stats.done and stats.earlier_ok == stats.earlier
            )
        judge.close(finished=finished, abandoned=writer.abandoned)
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
            notes.append(_interrupted(stats, options, whole_input=whole, demo=urls is not None))
        _print_summary(stats, busiest, console, notes=notes)
    final = _exit_code(code, interrupt.signum, stats, failed)
    if reports is not None:  # also for a run stopped by a signal or a closed output
        final = _write_reports(reports, stats, final, interrupt.signum)
    return final
