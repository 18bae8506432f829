"""One input URL on its way to a record, as the scheduler keeps it."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from afetch._spec import RequestSpec

if TYPE_CHECKING:
    from afetch._record import Record
    from afetch._url import Target
    from afetch.schedule.hosts import Host

# Input items are URLs (str) or request objects (RequestSpec); plain URLs stay str.
Item = str | RequestSpec


class Job:
    """One input URL on its way to a record."""

    __slots__ = (
        "attempts",
        "confirming",
        "epoch",
        "first",
        "host",
        "index",
        "last",
        "line",
        "paced_in",
        "stale",
        "started",
        "target",
        "url",
    )

    def __init__(self, url: Item, host: Host, index: int, target: Target | None = None) -> None:
        self.url = url
        self.host = host
        #: Its URL checked, when reading its host key did that already (schedule.hosts.locate):
        #: the attempt takes it instead of parsing the URL again. None: the attempt parses it.
        self.target = target
        #: Without per-host options: its host's URLs in the shared queue (schedule.affinity).
        self.line: Line | None = None
        #: Entries of it in the shared queue that are stale: it started out of turn since.
        self.stale = 0
        #: The host's ``auto`` epoch when the current attempt started (see schedule.autolimit).
        self.epoch = 0
        #: When the current attempt started, on the run's clock (``auto`` only).
        self.started = 0.0
        #: Position in the input, for ``ordered`` output.
        self.index = index
        #: Attempts made so far; the record of each attempt says this many (see schedule.run).
        self.attempts = 0
        #: The record of the last attempt, kept while the URL waits to retry.
        self.last: Record | None = None
        #: When the first attempt started (set only for a progress display's gauge).
        self.first: float | None = None
        #: ``--rate-limit-headers``: the host pacer's window (epoch) its attempt started in.
        self.paced_in = 0
        #: ``--confirm``: its failure (``last``) is held, and its next attempt is the last.
        self.confirming = False


class Line:
    """One host's URLs in the shared queue, in queue order, and its attempts in flight
    (schedule.affinity)."""

    __slots__ = ("jobs", "key", "running")

    def __init__(self, key: str) -> None:
        self.key = key
        self.jobs: deque[Job] = deque()
        self.running = 0
