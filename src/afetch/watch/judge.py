"""The judgement of each record, on the writer thread before it is written: ``ok`` from
``--accept``/``--accept-timeouts`` and ``--ok-if``, then ``change``/``streak``/``since`` from
``--history``; and the exit code that policy gives the run.

On the writer thread (afetch.output.writer), which already serialises records: a record's ``ok``
is decided before it is written, journaled (``--state``), counted (the summary) and reported,
and none of this work runs on the event loop. A batch costs one SQLite query and a few INSERTs
(committed about once a second) and, with ``--ok-if``, one exchange with the jq worker (each
record bounded there, see okif_worker.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from afetch._record import Record, set_judgement
from afetch.watch.policy import Accept, ExitPolicy

if TYPE_CHECKING:  # loaded by open_judge when asked: a plain run imports no sqlite3
    from afetch.watch.history import History
    from afetch.watch.okif import OkIf


class Judge:
    """Called with each batch of records; returns them judged, in the same order."""

    def __init__(
        self,
        *,
        accept: Accept | None = None,
        ok_if: OkIf | None = None,
        history: History | None = None,
        policy: ExitPolicy | None = None,
        optional: Sequence[str] = (),
        include: Sequence[str] = (),
    ) -> None:
        self._accept = accept
        self._ok_if = ok_if
        self.history = history
        self.policy = policy or ExitPolicy()
        self._optional = tuple(optional)
        self._include = tuple(include)

    @property
    def judges(self) -> bool:
        """Whether records need judging at all (not for an exit policy alone)."""
        return not (self._accept is None and self._ok_if is None and self.history is None)

    def __call__(self, batch: list[Record]) -> list[Record]:
        """Judge ``batch`` in place (see set_judgement) and return it."""
        accept = self._accept
        verdicts: list[bool | None]
        if accept is not None:
            verdicts = [accept.ok(record) for record in batch]
        else:
            verdicts = [None] * len(batch)
        if self._ok_if is not None:
            optional, include = self._optional, self._include
            lines = []
            for record, verdict in zip(batch, verdicts, strict=True):
                set_judgement(record, verdict, None)  # .ok for the expression: the verdict so far
                lines.append(record.to_json(optional, include))
            verdicts = list(self._ok_if.decide(lines, [record.url for record in batch]))
        if self.history is None:
            for record, verdict in zip(batch, verdicts, strict=True):
                set_judgement(record, verdict, None)
            return batch
        oks = [r.ok if v is None else v for r, v in zip(batch, verdicts, strict=True)]
        watches = self.history.judge(batch, oks)
        for record, verdict, watch in zip(batch, verdicts, watches, strict=True):
            set_judgement(record, verdict, watch)
        return batch

    def failed(self, *, all_ok: bool) -> bool:
        """Whether the exit policy fails this (finished) run; ``all_ok``: every record of it,
        a resumed run's earlier part included, was ok."""
        policy = self.policy
        if policy.fail_on == "none":
            return False
        if self.history is None:  # any, after 1 (the others need --history)
            return not all_ok
        count = self.history.failing(at_least=policy.after, exactly=policy.fail_on == "new")
        return count > 0

    def notes(self) -> list[str]:
        return [] if self._ok_if is None else self._ok_if.note_lines()

    def close(self, *, finished: bool, abandoned: bool = False) -> None:
        """End the jq worker; mark a ``finished`` run so in the store and close it. After an
        ``abandoned`` writer (a signal; it may still be in the store) the store is left to the
        process's exit: what was committed stays, the lock goes with the process."""
        if self._ok_if is not None:
            self._ok_if.close()
        if self.history is not None and not abandoned:
            if finished:
                self.history.finish()
            self.history.close()


def open_judge(
    *,
    history: str | None,
    resume: bool,
    shard: str,
    fail_on: str,
    fail_after: int,
    accept: frozenset[int] | None,
    accept_timeouts: bool,
    ok_if: str | None,
    optional: Sequence[str],
    include: Sequence[str],
) -> Judge | None:
    """The run's judge, None when no option asks for one; blocking (opens and locks the
    store: HistoryError). ``resume``: this run continues an unfinished one (``--resume``)."""
    policy = ExitPolicy(fail_on, fail_after)
    if history is None and ok_if is None and accept is None and not accept_timeouts:
        return None if policy == ExitPolicy() else Judge(policy=policy)
    from afetch.watch.history import History
    from afetch.watch.okif import OkIf

    return Judge(
        accept=Accept(accept, accept_timeouts) if accept is not None or accept_timeouts else None,
        ok_if=None if ok_if is None else OkIf(ok_if),
        history=None if history is None else History(history, resume=resume, shard=shard),
        policy=policy,
        optional=optional,
        include=include,
    )
