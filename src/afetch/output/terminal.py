"""What a person sees on a terminal's stderr: the live progress table and the coloured summary.

Only a terminal loads Rich; logs get the plain forms of :mod:`afetch.output.plain`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Span, Text

from afetch._redact import mask_url
from afetch._stats import CLASSES, Stats
from afetch.output.plain import (
    _UNPRINTABLE,
    PlainProgress,
    _count,
    _duration,
    _ms,
    eta,
    plain_line,
    summary_rows,
)
from afetch.schedule.gauge import Gauge

__all__ = ["PlainProgress", "ProgressDisplay", "ProgressView", "plain_line", "summary_view"]

_CLASS_STYLES = {"2xx": "green", "3xx": "cyan", "4xx": "yellow", "5xx": "red", "errors": "bold red"}


def _classes(stats: Stats) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for name in CLASSES:
        if text:
            text.append("  ")
        text.append(f"{name} ", style="dim")
        text.append(f"{stats.by_class[name]:,}", style=_CLASS_STYLES[name])
    return text


# -- the live progress table ---------------------------------------------------------------------

#: Width of the label column ("classes", "latency", ...), two spaces included.
_LABEL = 10
#: Rows of slowest in-flight URLs at most (fewer on a short terminal).
_SLOWEST = 3
_BAR_MIN, _BAR_MAX = 10, 40
# Control characters (C0, DEL, C1) of a URL would reach the terminal: Rich strips only a few.


def _age(seconds: float) -> str:
    return f"{seconds:4.1f}s" if seconds < 100 else _duration(seconds)


def _rate(rate: float, *, compact: bool) -> str:
    return f"{rate:.1f}/s" if rate < 10 else f"{_count(round(rate), compact=compact)}/s"


#: A row under construction: (text, style) pieces, turned into one Text at the end.
_Parts = list[tuple[str, str]]


def _width(parts: _Parts) -> int:
    # Everything but URLs is ASCII (or "–"): one cell per character. URLs come last in their
    # row, and Text's own ellipsis cuts them by cells.
    return sum(len(piece) for piece, _ in parts)


def _text(parts: _Parts) -> Text:
    """One no-wrap line from pieces: a single Text built at once, as redraws are on a budget."""
    spans, position = [], 0
    for piece, style in parts:
        if style:
            spans.append(Span(position, position + len(piece), style))
        position += len(piece)
    return Text(
        "".join(piece for piece, _ in parts), spans=spans, no_wrap=True, overflow="ellipsis"
    )


def _bar(done: int, total: int | None, width: int, *, plain: bool, ascii: bool) -> _Parts:
    """The progress bar in ``width`` cells; a pulse moving along it while the total is unknown."""
    full, rest = ("#", "-") if ascii else ("━", "─" if plain else "━")
    if not total:
        pulse = max(3, width // 5)
        at = int(time.monotonic() * 8) % (width + pulse) - pulse
        left, body = max(at, 0), min(at + pulse, width) - max(at, 0)
        return [
            (rest * left, "bar.back"),
            (full * body, "bar.pulse"),
            (rest * (width - left - body), "bar.back"),
        ]
    filled = width * min(done, total) // total
    style = "bar.finished" if done >= total else "bar.complete"
    return [(full * filled, style), (rest * (width - filled), "bar.back")]


class ProgressView:
    """Rows of the live table, laid out for the width Rich gives: one terminal line each.

    Columns shrink (1,234,567 → 1.2M), then drop (labels, elapsed, the bar), never wrap: every
    row is a ``no_wrap`` text, cut with an ellipsis only as a last resort.
    """

    def __init__(self, stats: Stats, gauge: Gauge, *, concurrency: int) -> None:
        self._stats = stats
        self._gauge = gauge
        self._concurrency = concurrency
        self._latency = (0, "–")  # (samples, the row they gave)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or console.height
        plain = console.no_color or console.color_system is None
        rows = [self._headline(width, plain=plain, ascii=options.ascii_only)]
        rows += self._rows(width - _LABEL)
        room = max(0, min(_SLOWEST, height - len(rows) - 1))
        for index, (url, age) in enumerate(self._gauge.oldest(room)):
            rows.append(
                [
                    (f"{'slowest' if index == 0 else '':<{_LABEL}}", "dim"),
                    (f"{_age(age)}  ", "yellow" if age >= 10 else ""),
                    (mask_url(url).translate(_UNPRINTABLE), ""),
                ]
            )
        # One Text for all rows: Rich wraps, crops and styles it in one pass (cheaper than a
        # Group of rows); no_wrap + ellipsis still cut each line on its own.
        parts: _Parts = []
        for index, row in enumerate(rows):
            if index:
                parts.append(("\n", ""))
            parts += row
        yield _text(parts)

    def _headline(self, width: int, *, plain: bool, ascii: bool) -> _Parts:
        stats = self._stats
        total, done = stats.total, stats.done
        left = eta(stats, self._gauge)
        for compact, labels in ((False, True), (True, True), (True, False)):
            parts = [
                (_count(done, compact=compact), "bold"),
                (f"/{'?' if total is None else _count(total, compact=compact)}", ""),
            ]
            if total:
                parts.append((f"  {min(done * 100 // total, 100)}%", ""))
            parts.append((f"  {_rate(stats.rate, compact=compact)}", ""))
            if labels:
                parts.append((f"  elapsed {_duration(stats.elapsed)}", ""))
            parts.append((f"  eta {_duration(left)}", ""))
            if _width(parts) <= width - _BAR_MIN - 1:
                break
        bar_width = min(_BAR_MAX, width - _width(parts) - 1)
        if bar_width < _BAR_MIN:
            return parts  # not even a short bar fits: the figures matter more
        return [*_bar(done, total, bar_width, plain=plain, ascii=ascii), (" ", ""), *parts]

    def _rows(self, room: int) -> list[_Parts]:
        stats, gauge = self._stats, self._gauge
        by_class = stats.by_class.copy()
        for compact, gap in ((False, "  "), (True, "  "), (True, " ")):
            classes: _Parts = []
            for name in CLASSES:
                classes.append((f"{gap if classes else ''}{name} ", "dim"))
                classes.append((_count(by_class[name], compact=compact), _CLASS_STYLES[name]))
            if _width(classes) <= room:
                break
        in_flight, waiting = gauge.in_flight, gauge.waiting
        for compact in (False, True):
            requests = (
                f"in flight {_count(in_flight, compact=compact)}/"
                f"{_count(self._concurrency, compact=compact)}"
                f"  waiting {_count(waiting, compact=compact)}"
            )
            if len(requests) <= room:
                break
        count = stats.latency.count
        if count != self._latency[0]:  # new samples since the last frame: recompute
            p50, p90, p99 = stats.latency.percentiles(50, 90, 99)
            self._latency = (count, f"p50 {_ms(p50)}  p90 {_ms(p90)}  p99 {_ms(p99)}")
        latency = self._latency[1]
        rows = [
            [("classes", "dim"), *classes],
            [("requests", "dim"), (requests, "")],
            [("latency", "dim"), (latency, "")],
        ]
        errors = stats.errors.copy()
        if errors:
            rows.append([("errors", "dim"), *_top_errors(errors, room)])
        for row in rows:
            row[0] = (f"{row[0][0]:<{_LABEL}}", "dim")
        return rows


def _top_errors(errors: Counter[str], width: int) -> _Parts:
    """As many error types as fit, most frequent first, then ``+N more``."""
    ranked = errors.most_common()
    for shown in range(len(ranked), 0, -1):
        for compact in (False, True):
            listed = "  ".join(f"{name} {_count(n, compact=compact)}" for name, n in ranked[:shown])
            more = f"  +{len(ranked) - shown} more" if shown < len(ranked) else ""
            if len(listed) + len(more) <= width:
                return [(listed, ""), (more, "dim")]
    return [(listed, ""), (more, "dim")]  # even one type is too long: cut with an ellipsis


class ProgressDisplay:
    """A Rich live view redrawn a few times a second from its own thread, off the event loop."""

    def __init__(self, view: ProgressView, console: Console) -> None:
        self._live = Live(
            view,
            console=console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> ProgressDisplay:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Write records to the same terminal above the table (from the writer thread).

        Holds the live display's lock, so no redraw runs meanwhile: the table is erased and the
        cursor put where its first line was, the caller writes whole lines there, and the table
        is drawn again below them. Without this a redraw moves up over the lines written since
        the last frame and erases them (records cut mid-line, table frames left in the
        scrollback). Rich's own ``console.print`` above a live display does the same.
        """
        live = self._live
        with live._lock:
            if not live.is_started:
                yield
                return
            render = live._live_render
            live.console.control(render.position_cursor())
            # The frame is gone: the next one is drawn where the records end, not moved up over.
            render._shape = None
            try:
                yield
            finally:
                live.refresh()


def progress_display(
    stats: Stats, gauge: Gauge, console: Console, *, concurrency: int, interval: float
) -> AbstractContextManager[object]:
    """The live table on a terminal that can redraw; plain status lines anywhere else.

    ``TERM=dumb`` counts as anywhere else: it cannot move the cursor back to redraw.
    """
    if console.is_terminal and not console.is_dumb_terminal:
        return ProgressDisplay(ProgressView(stats, gauge, concurrency=concurrency), console)
    return PlainProgress(stats, gauge, interval=interval, file=console.file)


def summary_view(
    stats: Stats,
    *,
    busiest: list[tuple[str, int, int]] | None = None,
    notes: list[tuple[str, str]] | None = None,
) -> Table:
    """The closing summary as a table, its status classes in colour."""
    rows = summary_rows(stats, busiest=busiest, notes=notes)
    table = Table(title="afetch summary", title_justify="left", show_header=False, box=None)
    # The labels keep their width, the values take the rest: a value is cut with an ellipsis
    # rather than wrapped, at any width (a long host name of --per-host), but a note (what to
    # do next) wraps between words, to be read in full.
    table.add_column(style="dim", no_wrap=True, width=max(len(label) for label, _ in rows))
    table.add_column(ratio=1)
    noted = {label for label, _ in notes or ()}
    for label, value in rows:
        if label == "classes":
            text = _classes(stats)
        elif label in noted:
            text = Text(value)
        else:
            text = Text(value, no_wrap=True, overflow="ellipsis")
        table.add_row(label, text)
    return table
