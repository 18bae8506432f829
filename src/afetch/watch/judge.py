"""The judgement of each record, on the writer thread before it is written: ``ok`` from
``--accept``/``--accept-timeouts`` and ``--ok-if``, then ``change``/``streak``/``since`` from
``--history``; and the exit code that policy gives the run.

On the writer thread (afetch.output.writer), which already serialises records: a record's ``ok``
is decided before it is written, journaled (``--state``), counted (the summary) and reported,
and none of this work runs on the event loop. A batch costs one SQLite query (its new rows are
written in one statement about once a second) and, with ``--ok-if``, one exchange with the jq
worker (each record bounded there, see okif_worker.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from afetch._record import Record, set_judgement
from afetch.watch.policy import Accept, ExitPolicy

if TYPE_CHECKING:  # loaded by open_judge when asked: a plain run imports no sqlite3
    from afetch.watch.history import History
    from afetch.watch.okif import OkIf


class Verdicts:
    """The run's one rule for ``ok``: ``--accept``/``--accept-timeouts``, then ``--ok-if`` on
    the record as JSON (its ``ok`` being the verdict so far). The writer's :class:`Judge` asks
    it, and so does ``--confirm`` on its way (afetch.schedule.holding: which failures to try
    again, and whether that try confirmed them), so both decide ``ok`` the same way.

    With ``--ok-if`` it is :attr:`blocking` (an exchange with the jq worker): ``--confirm``
    then calls it from a thread, never on the event loop. Thread-safe: one batch at a time.
    """

    def __init__(
        self,
        *,
        accept: Accept | None = None,
        ok_if: OkIf | None = None,
        optional: Sequence[str] = (),
        include: Sequence[str] = (),
    ) -> None:
        self._accept = accept
        self._ok_if = ok_if
        self._optional = tuple(optional)
        self._include = tuple(include)
        self._lock = threading.Lock()

    @property
    def blocking(self) -> bool:
        return self._ok_if is not None

    def decide(self, records: list[Record]) -> list[bool]:
        """Give each record its verdict, in place (see set_judgement), and return their ``ok``.

        A record that already carries one keeps it: ``--confirm`` decided it before the record
        reached the writer, and an expression is not asked twice (nor differently)."""
        todo = [record for record in records if record.verdict is None]
        if todo:
            accept, ok_if = self._accept, self._ok_if
            if accept is not None:
                for record in todo:
                    set_judgement(record, accept.ok(record), None)
            if ok_if is not None:
                optional, include = self._optional, self._include
                lines = [record.to_json(optional, include) for record in todo]
                urls = [record.url for record in todo]
                with self._lock:
                    answers = ok_if.decide(lines, urls)
                for record, verdict in zip(todo, answers, strict=True):
                    set_judgement(record, verdict, None)
        return [record.ok for record in records]

    def notes(self) -> list[str]:
        return [] if self._ok_if is None else self._ok_if.note_lines()

    def close(self) -> None:
        """End the jq worker."""
        if self._ok_if is not None:
            with self._lock:
                self._ok_if.close()


class Judge:
    """Called with each batch of records; returns them judged, in the same order."""

    def __init__(
        self,
        *,
        verdicts: Verdicts | None = None,
        history: History | None = None,
        policy: ExitPolicy | None = None,
    ) -> None:
        #: The rule for ok (None: the default one), shared with --confirm.
        self.verdicts = verdicts
        self.history = history
        self.policy = policy or ExitPolicy()

    @property
    def judges(self) -> bool:
        """Whether records need judging at all (not for an exit policy alone)."""
        return not (self.verdicts is None and self.history is None)

    def __call__(self, batch: list[Record]) -> list[Record]:
        """Judge ``batch`` in place (see set_judgement) and return it."""
        verdicts, history = self.verdicts, self.history
        oks = None if verdicts is None else verdicts.decide(batch)
        if history is None:
            return batch
        if oks is None:  # the default rule, Record.ok inlined
            oks = [r.error is None and r.status is not None and r.status < 400 for r in batch]
        history.judge(batch, oks)  # sets each record's watch
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
        return [] if self.verdicts is None else self.verdicts.notes()

    def close(self, *, finished: bool, abandoned: bool = False) -> None:
        """End the jq worker; mark a ``finished`` run so in the store and close it. After an
        ``abandoned`` writer (a signal; it may still be in the store) the store is left to the
        process's exit: what was committed stays, the lock goes with the process."""
        if self.verdicts is not None:
            self.verdicts.close()
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
    verdicts = None
    if ok_if is not None or accept is not None or accept_timeouts:
        verdicts = Verdicts(
            accept=Accept(accept, accept_timeouts)
            if accept is not None or accept_timeouts
            else None,
            ok_if=None if ok_if is None else _ok_if(ok_if),
            optional=optional,
            include=include,
        )
    store = None
    if history is not None:
        from afetch.watch.history import History  # sqlite3 only when asked

        store = History(history, resume=resume, shard=shard)
    return Judge(verdicts=verdicts, history=store, policy=policy)


def _ok_if(expression: str) -> OkIf:
    from afetch.watch.okif import OkIf

    return OkIf(expression)
