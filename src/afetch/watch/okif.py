"""``--ok-if EXPR``: a jq expression decides each record's ``ok``.

Real jq (libjq, through the ``jq`` package), compiled once up front to check it (a bad
expression is a usage error before anything is fetched), then run by a worker process
(afetch.watch.okif_worker) that the writer thread feeds a batch of records at a time. Each record
is given as the JSON record afetch writes, its ``ok`` being the verdict before ``--ok-if`` (the
default rule, or ``--accept``); no ``change``, ``streak`` or ``since`` (those follow from ``ok``).
A record whose expression fails (a jq error), runs out of its CPU bound or memory, is not ok;
the first of each kind of trouble is noted on stderr at the end of the run.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Sequence

from afetch._redact import excerpt
from afetch.watch.policy import WatchError

#: CPU seconds one record's evaluation may take before the worker is ended.
CPU_LIMIT_S = 1.0
#: After this many workers ended (each on a record that overran), the expression is given up:
#: the records after that are not ok, without evaluation.
MAX_WORKER_DEATHS = 3


class OkIfError(WatchError, ValueError):
    """The expression is not jq, or jq cannot be loaded; one line for stderr."""


def check_expression(expression: str) -> str:
    """Compile ``expression`` once in this process; raise OkIfError with jq's reason.

    >>> check_expression(".status < 400")
    '.status < 400'
    >>> check_expression(".status <")
    Traceback (most recent call last):
    ...
    afetch.watch.okif.OkIfError: not a jq expression: jq: error: syntax error, unexpected end...
    """
    try:
        import jq
    except ImportError:
        raise OkIfError("needs the jq package (pip install jq)") from None
    try:
        jq.compile(expression)
    except ValueError as exc:
        # jq's first line says it ("jq: error: syntax error, ... line 1, column 9:"); the
        # next ones repeat the expression and count the errors.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise OkIfError(f"not a jq expression: {excerpt(reason, 120)}") from None
    return expression


class OkIf:
    """Evaluates ``expression`` on records, in a worker process started on first use."""

    def __init__(self, expression: str, *, cpu_limit: float = CPU_LIMIT_S) -> None:
        self._expression = expression
        self._cpu_limit = cpu_limit
        self._worker: subprocess.Popen[bytes] | None = None
        self._deaths = 0
        #: Notes for the end of the run: the first of each kind of trouble.
        self.notes: dict[str, str] = {}

    def decide(self, lines: Sequence[str], urls: Sequence[str]) -> list[bool]:
        """The verdict for each record, given as its JSON ``lines`` (and ``urls`` for notes)."""
        verdicts: list[bool] = []
        start = 0
        while start < len(lines):
            if self._deaths >= MAX_WORKER_DEATHS:
                verdicts.extend(False for _ in lines[start:])
                break
            worker = self._worker or self._start()
            answers = self._exchange(worker, lines[start:])
            for answer in answers:
                if answer[:1] == b"e":
                    self._note("error", f"{answer[1:].decode('utf-8', 'replace').strip()}")
                verdicts.append(answer[:1] == b"1")
            start += len(answers)
            if start < len(lines):  # the worker ended on lines[start]
                self._note("limit", self._why(worker) + f" (first: {excerpt(urls[start], 120)})")
                self._worker = None
                self._deaths += 1
                verdicts.append(False)
                start += 1
        return verdicts

    def _start(self) -> subprocess.Popen[bytes]:
        self._worker = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "afetch.watch.okif_worker",
                self._expression,
                repr(self._cpu_limit),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C meant for afetch must not end it mid-batch (the records
            # still being written would be judged not ok); afetch ends it at close, and an
            # orphan ends at the EOF of its input.
            start_new_session=True,
        )
        return self._worker

    @staticmethod
    def _exchange(worker: subprocess.Popen[bytes], lines: Sequence[str]) -> list[bytes]:
        """Send ``lines``, read their answers; fewer if the worker ended (its answers fit in the
        pipe, so the whole batch can be sent before any is read). Blocking, each record bounded
        by the worker's CPU limit."""
        assert worker.stdin is not None
        assert worker.stdout is not None
        data = "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogatepass")
        with contextlib.suppress(OSError):  # ended: its answers so far are read below
            worker.stdin.write(data)
            worker.stdin.flush()
        answers = []
        for _ in lines:
            answer = worker.stdout.readline()
            if not answer:
                break
            answers.append(answer)
        return answers

    def _why(self, worker: subprocess.Popen[bytes]) -> str:
        with contextlib.suppress(OSError):
            worker.kill()
        code = worker.wait()
        if code == -getattr(signal, "SIGPROF", 1000):
            return f"a record took more than {self._cpu_limit:g} s of CPU"
        return f"the jq worker ended (exit code {code}; out of memory?)"

    def _note(self, kind: str, text: str) -> None:
        if kind not in self.notes:
            self.notes[kind] = text

    def note_lines(self) -> list[str]:
        """What went wrong, for stderr: one line per kind."""
        lines = []
        if "error" in self.notes:
            lines.append(f"--ok-if: jq error, records judged not ok: {self.notes['error']}")
        if "limit" in self.notes:
            lines.append(f"--ok-if: records judged not ok: {self.notes['limit']}")
        if self._deaths >= MAX_WORKER_DEATHS:
            lines.append(
                f"--ok-if: gave up after {MAX_WORKER_DEATHS} records overran; the rest not ok"
            )
        return lines

    def close(self) -> None:
        """End the worker (every answer it owes was read, or the run is stopping)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        with contextlib.suppress(OSError):
            worker.kill()
        worker.wait()
        for pipe in (worker.stdin, worker.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]
