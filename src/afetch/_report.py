"""What a person sees on stderr: the live progress table and the closing summary."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from afetch._stats import CLASSES, Stats

_CLASS_STYLES = {"2xx": "green", "3xx": "cyan", "4xx": "yellow", "5xx": "red", "errors": "bold red"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _classes(stats: Stats) -> Text:
    text = Text()
    for name in CLASSES:
        if text:
            text.append("  ")
        text.append(f"{name} ", style="dim")
        text.append(str(stats.by_class[name]), style=_CLASS_STYLES[name])
    return text


def progress_view(stats: Stats) -> RenderableType:
    total = "?" if stats.total is None else str(stats.total)
    table = Table.grid(padding=(0, 2))
    table.add_row(
        # Pulses while the total is unknown (stdin, or files still being counted).
        ProgressBar(total=stats.total, completed=stats.done, width=24),
        Text(f"{stats.done}/{total}", style="bold"),
        Text(f"{stats.rate:,.0f}/s"),
        Text(f"elapsed {_duration(stats.elapsed)}"),
        Text(f"eta {_duration(stats.eta)}"),
        _classes(stats),
        Text(f"in flight {stats.in_flight}"),
    )
    return table


class ProgressDisplay:
    """A Rich live view redrawn a few times a second from its own thread, off the event loop."""

    def __init__(self, stats: Stats, console: Console) -> None:
        self._live = Live(
            get_renderable=lambda: progress_view(stats),
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


def summary_view(stats: Stats) -> Table:
    table = Table(title="afetch summary", title_justify="left", show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    not_ok = stats.done - stats.ok
    table.add_row("urls", f"{stats.done} done, {stats.ok} ok, {not_ok} not ok")
    table.add_row("classes", _classes(stats))
    if stats.errors:
        errors = ", ".join(f"{name} {count}" for name, count in stats.errors.most_common())
        table.add_row("errors", errors)
    latency = stats.latency
    if latency.count:
        table.add_row(
            "latency",
            "  ".join(
                f"{label} {value:,.1f} ms"
                for label, value in (
                    ("p50", latency.percentile(50)),
                    ("p90", latency.percentile(90)),
                    ("p99", latency.percentile(99)),
                    ("max", latency.max),
                )
            ),
        )
    table.add_row("rate", f"{stats.rate:,.1f} requests/s over {stats.elapsed:.2f} s")
    table.add_row("bytes", _size(stats.bytes))
    return table
