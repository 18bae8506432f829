"""The ``--ok-if`` worker: ``python -m afetch.watch.okif_worker EXPR CPU_SECONDS``.

Reads one record (JSON text) per line on stdin and answers each, in order, with one line on
stdout: ``1`` (the expression's first output is neither false nor null), ``0`` (it is, or there
is none), or ``e`` and jq's error message. A process of its own because libjq, through the
``jq`` package, holds Python's GIL while it runs: a slow expression in a thread of afetch would
stop the event loop too, and nothing could stop one that loops forever. Here each record gets
at most CPU_SECONDS of CPU time: then the kernel ends the process (SIGPROF, whose default action
is to terminate; no Python handler could run while libjq holds the GIL), and afetch judges that
record not ok and starts a new worker for the rest. Memory is bounded likewise (RLIMIT_AS).
"""

from __future__ import annotations

import os
import sys

#: Address space for the worker: room for large records, not for `[range(1e10)]`.
MEMORY_LIMIT = 1 << 30
#: Characters of an error message passed back (the pipe holds a batch's answers).
MESSAGE_LIMIT = 200


def main(expression: str, cpu_seconds: float) -> int:
    import jq

    program = jq.compile(expression)
    arm = timer = None
    try:
        import signal

        arm, timer = signal.setitimer, signal.ITIMER_PROF
    except (ImportError, AttributeError):  # Windows: no CPU bound (docs/records.md)
        pass
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, AttributeError, ValueError, OSError):  # Windows, or not allowed here
        pass
    for line in sys.stdin.buffer:
        if arm is not None:
            arm(timer, cpu_seconds)
        try:
            value = next(iter(program.input(text=line.decode("utf-8", "surrogateescape"))), None)
            answer = b"0\n" if value is None or value is False else b"1\n"
        except ValueError as exc:
            message = " ".join(str(exc).split())[:MESSAGE_LIMIT]
            answer = b"e" + message.encode("utf-8", "replace") + b"\n"
        if arm is not None:
            arm(timer, 0)
        os.write(1, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
