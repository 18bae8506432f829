"""RunOptions: what the command line adds around the library's Settings for one run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from afetch.input.shard import Shard

#: The options of afetch.watch's judge (``--history``, ``--fail-on``, ``--accept``, ...).
_JUDGING = ("history", "fail_on", "fail_after", "accept", "accept_timeouts", "ok_if")


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

    @property
    def judged(self) -> bool:
        """Whether an option of afetch.watch is given: with all at their defaults a record keeps
        the ok it was fetched with, and the run loads nothing of afetch.watch."""
        defaults = RunOptions.__dataclass_fields__  # type: ignore[attr-defined]
        return any(getattr(self, name) != defaults[name].default for name in _JUDGING)
