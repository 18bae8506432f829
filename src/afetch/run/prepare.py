"""Before the first request: the checks of every path, and the opening of what a run reads and
writes (input, folders, --report, the --state journal, the judge and --history, the output).

Whatever cannot be used is one ``afetch: error:`` line and exit 2, with what was opened before
it closed again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from afetch._settings import Settings
from afetch.input.reader import InputError, open_sources
from afetch.output.sinks import included_keys, open_output, optional_keys
from afetch.reports import ReportError
from afetch.run import fdlimit as fdlimit
from afetch.run.display import on_github_actions
from afetch.run.exits import EXIT_USAGE, error_line
from afetch.run.options import RunOptions
from afetch.run.paths import path_problem

if TYPE_CHECKING:
    from afetch.input.journal import Journal
    from afetch.reports.collect import Reports
    from afetch.watch.judge import Judge

try:
    import fcntl
except ImportError:  # Windows: the stdout check below is skipped (docs/install.md)
    fcntl = None  # type: ignore[assignment]


# A NamedTuple, not a frozen dataclass: the same value at a tenth of the cost at start-up.
class Prepared(NamedTuple):
    """What a run opened before its first request."""

    #: The settings, ``-c`` lowered to fit the open files limit if it had to be.
    settings: Settings
    #: The input files' descriptors (none when the URLs come from elsewhere: the demo).
    fds: list[int]
    reports: Reports | None
    journal: Journal | None
    judge: Judge | None
    #: Where records go (``-o`` or stdout).
    stream: BinaryIO
    #: The URLs an interrupted run did (``--resume``), to be skipped.
    done: set[str]


async def prepare(settings: Settings, options: RunOptions, *, own_input: bool) -> Prepared | int:
    """Check and open what the run needs, in this order; the exit code if something cannot be.

    ``own_input`` is False when the URLs do not come from ``options.sources`` (the demo).
    """
    settings = _fit_descriptors(settings, sources=len(options.sources) if own_input else 0)
    try:
        fds = open_sources(options.sources) if own_input else []
    except InputError as exc:
        error_line(str(exc))
        return EXIT_USAGE
    problem = _output_problem(settings, options, fds, options.sources if own_input else ())
    if problem is not None or (problem := _make_dirs(settings, options)) is not None:
        error_line(problem)
        return EXIT_USAGE
    try:
        reports = _open_reports(options)
    except ReportError as exc:  # one line, exit 2, as for -o
        error_line(str(exc))
        return EXIT_USAGE
    # --state and afetch.watch's options are loaded when given: a plain run imports neither.
    journal = judge = None
    if options.state is not None:
        from afetch.input.journal import JournalBusy

        try:
            journal = await _open_journal(options.state, options)
        except JournalBusy as exc:
            error_line(str(exc))
            return _discard(reports, EXIT_USAGE)
        except OSError as exc:
            error_line(f"cannot use state file {options.state}: {exc.strerror or exc}")
            return _discard(reports, EXIT_USAGE)
    if options.judged:
        from afetch.watch.policy import WatchError

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
    return Prepared(settings, fds, reports, journal, judge, stream, done)


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


async def _open_journal(state: str, options: RunOptions) -> Journal:
    """Lock the --state journal, and read it for --resume (in a thread: it can take seconds)."""
    from afetch.input.journal import Journal

    journal = await asyncio.to_thread(Journal, state, resume=options.resume)
    if journal.restarted and not options.quiet:
        print(f"afetch: {state}: previous run finished; starting a new run", file=sys.stderr)
    elif journal.earlier.done and not options.quiet:
        print(
            f"afetch: resuming: {len(journal.earlier.done)} URLs already done in {state}",
            file=sys.stderr,
        )
    return journal


async def _open_judge(
    settings: Settings, options: RunOptions, journal: Journal | None
) -> Judge | None:
    """The judge of records (afetch.watch), opening and locking --history and starting
    --ok-if's worker in a thread; without either nothing blocks, and no thread is started
    (asyncio's executor thread, joined again at exit)."""
    from afetch.watch.judge import open_judge

    blocks = options.history is not None or options.ok_if is not None
    opening = functools.partial(
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
    return await asyncio.to_thread(opening) if blocks else opening()


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


def _open_reports(options: RunOptions) -> Reports | None:
    """``--report``'s files, and GitHub Actions' job summary and annotations; None for neither
    (a run without them imports none of afetch.reports' writers). ReportError if a report's
    folder cannot be written."""
    if not options.reports and not on_github_actions():
        return None
    from afetch.reports.collect import Reports

    return Reports(options.reports, env=os.environ, quiet=options.quiet)


def _discard(reports: Reports | None, code: int) -> int:
    """A run that ends before it starts leaves no report, nor its temporary file."""
    if reports is not None:
        reports.discard()
    return code
