"""What changed for one URL since its last run: the ``change``, ``streak`` and ``since`` keys.

Pure: the store (afetch.watch.history) reads a URL's row, :func:`next_row` makes the new one.

``change``, the first that applies:

- ``new``: no earlier run of this store saw the URL (or it was forgotten: see history.py);
- ``flapping``: its ok changed at least :data:`FLAP_CHANGES` times within its last
  :data:`FLAP_WINDOW` runs, this one included;
- ``broke``: ok in its last run, not ok now; ``recovered``: the other way round;
- ``changed``: ok as before, but the status, the final URL, or the body's sha256 (when both
  runs have one: ``--hash`` or ``--save-dir``) differs;
- ``same``: nothing of those differs.

``streak`` counts the runs in a row the URL has been ok (or not ok) so far, this one included;
``since`` is the ``started_at`` of the first of them.
"""

from __future__ import annotations

CHANGES = ("new", "same", "broke", "recovered", "changed", "flapping")
NEW, SAME, BROKE, RECOVERED, CHANGED, FLAPPING = range(len(CHANGES))
#: Outcomes (ok or not) remembered per URL, newest first: the flapping window fits in them.
KEEP_OUTCOMES = 16
#: Flapping: this many changes of ok within the last FLAP_WINDOW runs (Nagios's flap detection
#: in its simplest form: changes over a window, no weights).
FLAP_WINDOW = 8
FLAP_CHANGES = 3
_KEPT = 1 << KEEP_OUTCOMES

#: A URL's row: (run, ok, outcomes, status, final, body, change, streak, since). ``outcomes``
#: holds its last outcomes as bits, newest lowest, under a leading 1 (so 0b1 is none yet);
#: ``final`` and ``body`` are 8-byte digests of the final URL and the body's sha256.
Row = tuple[int, int, int, int | None, bytes | None, bytes | None, int, int, str]


def next_row(
    before: Row | None,
    run: int,
    ok: bool,
    status: int | None,
    final: bytes | None,
    body: bytes | None,
    started_at: str,
) -> Row:
    """The row after this run's outcome.

    >>> row = next_row(None, run=1, ok=True, status=200, final=None, body=None, started_at="t1")
    >>> CHANGES[row[6]], row[7:]
    ('new', (1, 't1'))
    >>> row = next_row(row, run=2, ok=False, status=500, final=None, body=None, started_at="t2")
    >>> CHANGES[row[6]], row[7:]
    ('broke', (1, 't2'))
    >>> row = next_row(row, run=3, ok=False, status=503, final=None, body=None, started_at="t3")
    >>> CHANGES[row[6]], row[7:]
    ('changed', (2, 't2'))
    """
    outcomes = 1 if before is None else before[2]
    outcomes = (outcomes << 1) | ok
    if outcomes >= _KEPT << 1:  # drop the oldest: keep the sentinel and KEEP_OUTCOMES bits
        outcomes = (outcomes & (_KEPT - 1)) | _KEPT
    if before is None:
        return (run, ok, outcomes, status, final, body, NEW, 1, started_at)
    was_ok, streak, since = before[1], before[7], before[8]
    if ok == was_ok:
        streak += 1
    else:
        streak, since = 1, started_at
    if _FLIPS[outcomes if outcomes < _FLIPS_KNOWN else (outcomes & _WINDOW) | _WINDOW + 1] >= (
        FLAP_CHANGES
    ):
        change = FLAPPING
    elif ok != was_ok:
        change = RECOVERED if ok else BROKE
    elif (
        status != before[3]
        or final != before[4]
        or (body is not None and before[5] is not None and body != before[5])
    ):
        change = CHANGED
    else:
        change = SAME
    # A body digest from an earlier run with --hash outlives runs without it.
    return (run, ok, outcomes, status, final, body or before[5], change, streak, since)


def _flips(outcomes: int) -> int:
    """Changes of ok between consecutive outcomes among the last FLAP_WINDOW.

    >>> _flips(0b1_0101), _flips(0b1_0011), _flips(0b1)
    (3, 1, 0)
    """
    known = min(outcomes.bit_length() - 1, FLAP_WINDOW)
    window = outcomes & ((1 << known) - 1)
    # Bits that differ from their older neighbour, within the window.
    return ((window ^ (window >> 1)) & ((1 << (known - 1)) - 1)).bit_count() if known > 1 else 0


_WINDOW = (1 << FLAP_WINDOW) - 1
#: _flips of every ``outcomes`` up to a full window under its sentinel: those past it count as
#: their window under the sentinel (a table look-up per URL, not a call).
_FLIPS_KNOWN = 1 << (FLAP_WINDOW + 1)
_FLIPS = (0, *(_flips(outcomes) for outcomes in range(1, _FLIPS_KNOWN)))
