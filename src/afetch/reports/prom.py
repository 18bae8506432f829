"""``--report prom=PATH``: the run in Prometheus' text format, for node_exporter's textfiles.

Written by hand rather than with ``prometheus_client``: the format is a few lines of text, the
escaping of label values is the only subtle part (tests/test_reports.py parses every report
with ``prometheus_client``'s own parser, hostile label values included), and the run needs no
registry, no extra dependency and none of its import time.

Every value is about the last run (gauges), and each sample carries ``run="NAME"``, NAME being
the file's name without ``.prom``: two cron jobs writing ``nightly.prom`` and ``hourly.prom``
into one textfile folder give two series, where the same labels would make node_exporter
refuse both files.
"""

from __future__ import annotations

import os

from afetch._errors import ERROR_TYPES
from afetch._stats import CLASSES
from afetch.reports.atomic import TempFile
from afetch.reports.summary import LATENCY_BUCKETS_S, Outcome


def label_value(text: str) -> str:
    r"""``text`` quoted as a label value: backslash, double quote and newline escaped.

    >>> label_value('a"b\\c\nd')
    '"a\\"b\\\\c\\nd"'
    """
    # A file name's undecodable bytes (surrogate escapes) become '?': the file is UTF-8.
    text = text.encode("utf-8", "replace").decode("utf-8")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(outcome: Outcome, *, run: str) -> str:
    """The text of the report."""
    summary, tally = outcome.summary, outcome.tally
    lines: list[str] = []
    base = f"run={label_value(run)}"

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = f"{base},{labels}" if labels else base
            lines.append(f"{name}{{{inner}}} {_number(value)}")

    urls = summary["urls"]
    metric(
        "afetch_last_run_timestamp_seconds",
        "gauge",
        "When the last run ended (Unix time); alert when it is too old.",
        [("", outcome.finished)],
    )
    metric(
        "afetch_last_run_duration_seconds",
        "gauge",
        "How long the last run took.",
        [("", summary["duration_s"])],
    )
    metric(
        "afetch_last_run_exit_code",
        "gauge",
        "The last run's exit code (0 all ok, 1 some URL not ok, 130/143/129 stopped by a signal).",
        [("", summary["exit_code"])],
    )
    metric("afetch_urls", "gauge", "URLs done in the last run.", [("", urls["done"])])
    metric("afetch_urls_not_ok", "gauge", "URLs not ok in the last run.", [("", urls["not_ok"])])
    metric(
        "afetch_urls_by_class",
        "gauge",
        "URLs of the last run by status class (errors: no HTTP status).",
        [(f"class={label_value(name)}", summary["classes"][name]) for name in CLASSES],
    )
    errors = summary["errors"]
    kinds = [*ERROR_TYPES, *sorted(set(errors) - set(ERROR_TYPES))]
    metric(
        "afetch_errors",
        "gauge",
        "URLs of the last run by error type.",
        [(f"type={label_value(kind)}", errors.get(kind, 0)) for kind in kinds],
    )
    changes = summary["changes"]
    if changes:
        metric(
            "afetch_changes",
            "gauge",
            "URLs of the last run by change since the run before (--history).",
            [(f"change={label_value(name)}", n) for name, n in changes.items()],
        )
    metric("afetch_bytes", "gauge", "Body bytes of the last run.", [("", summary["bytes"])])
    name = "afetch_url_elapsed_seconds"
    lines.append(f"# HELP {name} Time per URL in the last run (elapsed_ms, retries included).")
    lines.append(f"# TYPE {name} histogram")
    cumulative = 0
    bounds = [*(repr(bound) for bound in LATENCY_BUCKETS_S), "+Inf"]
    for bound, count in zip(bounds, tally.buckets, strict=True):
        cumulative += count
        lines.append(f'{name}_bucket{{{base},le="{bound}"}} {cumulative}')
    lines.append(f"{name}_sum{{{base}}} {_number(tally.latency_sum_ms / 1000)}")
    lines.append(f"{name}_count{{{base}}} {cumulative}")
    return "\n".join(lines) + "\n"


class Report:
    def __init__(self, path: str) -> None:
        self._temp = TempFile(path)
        name = os.path.basename(path)
        self._run = name[: -len(".prom")] if name.endswith(".prom") else name

    def write(self, outcome: Outcome) -> None:
        self._temp.write_all(render(outcome, run=self._run).encode("utf-8"))

    def discard(self) -> None:
        self._temp.discard()
