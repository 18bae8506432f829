"""``--report KIND=PATH``: files about a whole run, for Prometheus, CI and people.

The registry below has one entry per kind: its name and the module that writes it, imported
only when a run asks for that kind (a run without ``--report`` loads none of them). Adding a
kind is one entry here, one module with a ``Report`` class (see :mod:`afetch.reports.collect`)
and its row in docs/watching.md (tests/test_reports.py checks the rows).
"""

from __future__ import annotations

from typing import NamedTuple


# A NamedTuple, not a frozen dataclass: the same value at a tenth of the cost at start-up.
class Kind(NamedTuple):
    name: str
    #: The module whose ``Report`` class writes this kind.
    module: str


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("prom", "afetch.reports.prom"),
        Kind("junit", "afetch.reports.junit"),
        Kind("json", "afetch.reports.summary_json"),
        Kind("md", "afetch.reports.markdown"),
    )
}


class ReportError(Exception):
    """A report's file cannot be made: the message names the option and says why."""


class ReportSpecError(ValueError):
    """A ``--report`` value that is not ``KIND=PATH`` with a known kind."""


def parse_report(raw: str) -> tuple[str, str]:
    """``(kind, path)`` from ``KIND=PATH``.

    >>> parse_report("prom=/var/lib/node_exporter/afetch.prom")
    ('prom', '/var/lib/node_exporter/afetch.prom')
    >>> parse_report("xml=out.xml")
    Traceback (most recent call last):
    ...
    afetch.reports.ReportSpecError: unknown report kind 'xml' (choose from prom, junit, json, md)
    """
    kind, sep, path = raw.partition("=")
    kind = kind.strip().lower()
    if not sep or not path:
        raise ReportSpecError(f"expected KIND=PATH, got {raw[:40]!r}")
    if kind not in KINDS:
        raise ReportSpecError(f"unknown report kind {kind[:20]!r} (choose from {', '.join(KINDS)})")
    if path == "-":
        raise ReportSpecError("a report needs a file: stdout carries only records")
    return kind, path
