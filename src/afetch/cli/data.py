"""``-d/--data`` and ``--json``: the body of every request, read once when the run starts.

As curl: ``-d TEXT`` sends TEXT form encoded (it is not encoded further), ``-d @FILE`` the file's
contents with carriage returns and newlines removed, repeated ``-d`` are joined with ``&``;
``--json TEXT|@FILE`` sends TEXT or the file as it is, repeated ``--json`` are concatenated.
``@-`` reads stdin, which is only possible when stdin is not where the URLs come from.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


class DataError(ValueError):
    """A body option cannot be used; the message is one line for stderr."""


def load_body(
    values: Sequence[str], *, kind: str, stdin_is_input: bool, option: str
) -> bytes | None:
    """The body ``values`` of ``-d`` (``kind="form"``) or ``--json`` (``"json"``) make, or None.

    >>> load_body(["a=1", "b=2"], kind="form", stdin_is_input=False, option="-d")
    b'a=1&b=2'
    >>> load_body(['{"a":', "1}"], kind="json", stdin_is_input=False, option="--json")
    b'{"a":1}'
    """
    if not values:
        return None
    parts = [_one(v, kind=kind, stdin_is_input=stdin_is_input, option=option) for v in values]
    return (b"&" if kind == "form" else b"").join(parts)


def body_files(values: Sequence[str]) -> tuple[str, ...]:
    """The files ``@FILE`` values name (not ``@-``), for the check that no output is one.

    >>> body_files(["a=1", "@form.txt", "@-"])
    ('form.txt',)
    """
    return tuple(v[1:] for v in values if v.startswith("@") and v != "@-")


def _one(value: str, *, kind: str, stdin_is_input: bool, option: str) -> bytes:
    if not value.startswith("@"):
        return value.encode("utf-8", "surrogateescape")
    path = value[1:]
    if path == "-":
        if stdin_is_input:
            raise DataError(
                f"{option} @- reads stdin, but stdin is the URL list: give the URLs as a file"
            )
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise DataError(f"cannot read {option} file {path}: {exc.strerror or exc}") from None
    if kind == "form":  # curl -d @FILE drops line breaks (--data-binary would keep them)
        data = data.replace(b"\r", b"").replace(b"\n", b"")
    return data
