"""The plain forms of what a person sees on stderr: progress lines and the closing summary.

Plain text, no Rich: what a log, a cron mail or a pipe gets, and the rows the coloured
summary of :mod:`afetch.output.terminal` is drawn from.
"""

from __future__ import annotations

import threading
from typing import IO

from afetch._redact import mask_url
from afetch._stats import CLASSES, Stats
from afetch._timestamps import now_iso
from afetch.schedule.gauge import Gauge

# Control characters (C0, DEL, C1) of a URL would reach the terminal: Rich strips only a few.
_UNPRINTABLE = {c: "?" for c in (*range(32), *range(127, 160))}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _count(value: int, *, compact: bool) -> str:
    """``1,234,567``, or ``1.2M`` when room is short.

    >>> _count(1234567, compact=False), _count(1234567, compact=True), _count(999, compact=True)
    ('1,234,567', '1.2M', '999')
    """
    if not compact or value < 10_000:
        return f"{value:,}"
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value >= size:
            scaled = value / size
            return f"{scaled:.1f}{unit}" if scaled < 100 else f"{scaled:,.0f}{unit}"
    return str(value)  # pragma: no cover (values below 1000 returned above)


def _ms(value: float) -> str:
    """A latency, short: ``12.3 ms``, ``1.23 s``, ``81 s``."""
    if value < 1000:
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    return f"{value / 1000:.2f} s" if value < 10_000 else f"{value / 1000:,.0f} s"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def eta(stats: Stats, gauge: Gauge) -> float | None:
    """Seconds left: the URLs not done at the current rate, but never less than the URLs being
    retried may still take (at 98% with hung URLs, the rate alone says 0:00)."""
    by_rate = stats.eta
    if by_rate is None:
        return None
    return max(by_rate, gauge.tail())


def plain_line(stats: Stats, gauge: Gauge) -> str:
    """One status line without escape codes, fields always in the same order, after an
    ISO-8601 time (UTC). Numbers without separators, for ``awk``.

    >>> stats = Stats(total=5000)
    >>> stats.done, stats.finished = 1200, stats.started + 4  # a 4-second run
    >>> stats.by_class.update({"2xx": 1100, "4xx": 50, "5xx": 10, "errors": 40})
    >>> stamp, line = plain_line(stats, Gauge()).split(" ", 1)
    >>> stamp.endswith("Z"), line.startswith("afetch: progress: 1200/5000 24% 300/s 2xx 1100 ")
    (True, True)
    >>> line.split(" errors ")[1]
    '40 in_flight 0 waiting 0 elapsed 0:04 eta 0:12'
    """
    total, done = stats.total, stats.done
    percent = f"{min(done * 100 // total, 100)}%" if total else "?%"
    by_class = stats.by_class.copy()
    classes = " ".join(f"{name} {by_class[name]}" for name in CLASSES)
    rate, left = stats.rate, eta(stats, gauge)
    return (
        f"{now_iso()} afetch: progress: {done}/{'?' if total is None else total} {percent} "
        f"{f'{rate:.1f}' if rate < 10 else f'{rate:.0f}'}/s {classes} "
        f"in_flight {gauge.in_flight} waiting {gauge.waiting} "
        f"elapsed {_duration(stats.elapsed)} eta {'?' if left is None else _duration(left)}"
    )


class PlainProgress:
    """Writes :func:`plain_line` every ``interval`` seconds from its own thread.

    The loop never waits on stderr: a slow or blocked log pipe stalls only this thread.
    """

    def __init__(self, stats: Stats, gauge: Gauge, *, interval: float, file: IO[str]) -> None:
        self._stats, self._gauge = stats, gauge
        self._interval = interval
        self._file = file
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="afetch-progress", daemon=True)

    def __enter__(self) -> PlainProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # A writer stuck on a full pipe must not hold up the exit: it is a daemon thread.
        self._thread.join(timeout=1)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._file.write(plain_line(self._stats, self._gauge) + "\n")
                self._file.flush()
            except (OSError, ValueError):
                return  # stderr closed or gone: progress is not worth an error


# -- the closing summary -------------------------------------------------------------------------


def summary_rows(
    stats: Stats,
    *,
    busiest: list[tuple[str, int, int]] | None = None,
    notes: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(label, text) rows of the closing summary; ``busiest`` (``--per-host auto``): (host,
    attempts, learned limit); ``notes``: rows about the run itself (an interruption, a resume),
    shown after the counts.

    Numbers have thousands separators and lists two spaces between items, as in the live table.
    """
    not_ok = stats.done - stats.ok
    rows = [
        ("urls", f"{stats.done:,} done, {stats.ok:,} ok, {not_ok:,} not ok"),
        *_earlier_rows(stats),
        *(notes or ()),
        ("classes", "  ".join(f"{name} {stats.by_class[name]:,}" for name in CLASSES)),
    ]
    if stats.errors:
        rows.append(
            ("errors", "  ".join(f"{name} {count:,}" for name, count in stats.errors.most_common()))
        )
    latency = stats.latency
    if latency.count:
        # Every URL's elapsed_ms, failures included (docs/options.md).
        values = (*latency.percentiles(50, 90, 99), latency.max)
        pairs = zip(("p50", "p90", "p99", "max"), values, strict=True)
        rows.append(("latency", "  ".join(f"{label} {_ms(value)}" for label, value in pairs)))
    rows.append(("rate", f"{stats.rate:,.1f} requests/s over {stats.elapsed:,.2f} s"))
    rows.append(("bytes", _size(stats.bytes)))
    for index, (host, attempts, limit) in enumerate(busiest or ()):
        # A host key is scheme, host and port only (no credentials); control characters of a
        # hostname must not reach the terminal all the same.
        shown = mask_url(host).translate(_UNPRINTABLE)
        label = "per host" if index == 0 else ""
        rows.append((label, f"{shown}  {attempts:,} requests, settled at {limit:,}"))
    return rows


def _earlier_rows(stats: Stats) -> list[tuple[str, str]]:
    """A resumed run: the URLs done before it, which its exit code covers too."""
    if not stats.earlier:
        return []
    ok, earlier = stats.earlier_ok, stats.earlier
    return [("earlier", f"{earlier:,} already done, {ok:,} ok, {earlier - ok:,} not ok")]


def interrupted_note(
    stats: Stats, *, total: int | None, state: str | None, hint: bool = True
) -> tuple[str, str]:
    """The summary's row for a run stopped by a signal: what was not fetched, how to go on
    (``hint``: whether a --state journal could resume this input at all).

    >>> interrupted_note(Stats(), total=5000, state="s.txt")
    ('stopped', 'interrupted: 5,000 of 5,000 URLs not fetched (resume with --state s.txt --resume)')
    >>> interrupted_note(Stats(), total=None, state=None)[1]
    'interrupted: the URLs after these were not fetched (run with --state FILE to resume)'
    """
    if total is None:
        text = "interrupted: the URLs after these were not fetched"
    else:
        text = f"interrupted: {max(total - stats.done, 0):,} of {total:,} URLs not fetched"
    if state is not None:
        return "stopped", f"{text} (resume with --state {state} --resume)"
    return "stopped", f"{text} (run with --state FILE to resume)" if hint else text


def summary_text(
    stats: Stats,
    *,
    busiest: list[tuple[str, int, int]] | None = None,
    notes: list[tuple[str, str]] | None = None,
) -> str:
    """The closing summary for a log: each line stamped and prefixed as the progress lines are.

    >>> stats = Stats(total=2)
    >>> stats.done, stats.ok = 2000, 1000
    >>> print(summary_text(stats).splitlines()[1].split(" ", 1)[1])
    afetch:  urls     2,000 done, 1,000 ok, 1,000 not ok
    """
    rows = summary_rows(stats, busiest=busiest, notes=notes)
    width = max(len(label) for label, _ in rows)
    lines = ["summary", *(f" {label:<{width}}  {text}" for label, text in rows)]
    stamp = now_iso()
    return "\n".join(f"{stamp} afetch: {line}" for line in lines)
