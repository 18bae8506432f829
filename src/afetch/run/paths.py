"""The one check of every path a run reads or writes against the others, before anything is
opened for writing: a run never writes over one of its inputs, and no two of its outputs share
a file.

Files are compared by identity (device and inode) when they exist, so a hard link, a symlink
or ``./x`` is the file ``x``; a file still to be created by its resolved path. What is written:
``-o`` (or stdout, when it is a regular file: ``afetch urls.txt >> urls.txt``, which GNU cat
refuses too), ``--state``, each ``--report``, the ``--cache`` index files, and ``--save-dir``'s
bodies. What is read: the sources (by their open descriptors, so stdin counts), ``--cacert``,
``-d``/``--json`` ``@FILE`` and ``--state``.

``--save-dir DIR`` only ever writes ``DIR/HOST/STEM__HASH[.EXT]`` (see ``_save``), and replaces
such a file by a rename: a file directly in DIR, or named otherwise, is never touched. So a
source or ``-o`` inside DIR is fine unless it has a saved body's form of name.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from typing import NamedTuple

#: A saved body's name (``_save``): 16 hex digits of hash after ``__``, maybe an extension.
#: A pattern, compiled (and cached by ``re``) only when --save-dir asks: a run without it skips.
_SAVED_NAME = r"__[0-9a-f]{16}(\.[A-Za-z0-9]{1,10})?$"


# A NamedTuple, not a frozen dataclass: the same value at a tenth of the cost at start-up.
class _File(NamedTuple):
    """A file by what it is: ``(device, inode)`` when it exists, else its resolved path."""

    label: str
    identity: tuple[int, int] | str

    @classmethod
    def at(cls, label: str, path: str) -> _File:
        try:
            info = os.stat(path)
        except OSError:
            return cls(label, os.path.realpath(path))
        return cls(label, (info.st_dev, info.st_ino))

    @classmethod
    def open(cls, label: str, fd: int) -> _File | None:
        """The regular file open at ``fd``, or None (a pipe, a terminal, /dev/null)."""
        try:
            info = os.fstat(fd)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return cls(label, (info.st_dev, info.st_ino))


def path_problem(
    *,
    sources: Sequence[str],
    source_fds: Sequence[int],
    output: str | None,
    state: str | None,
    cache_dir: str | None = None,
    save_dir: str | None = None,
    cacert: str | None = None,
    body_files: Sequence[str] = (),
    reports: Sequence[tuple[str, str]] = (),
    history: str | None = None,
) -> str | None:
    """Why these paths cannot be used together, or None; opens and creates nothing.

    ``reports``: the ``--report`` (kind, path) pairs."""
    reads = [
        f
        for name, fd in zip(sources, source_fds, strict=True)
        if (f := _File.open("stdin" if name == "-" else f"an input file ({name})", fd)) is not None
    ]
    if cacert is not None:
        reads.append(_File.at(f"the --cacert file ({cacert})", cacert))
    reads.extend(_File.at(f"a -d/--json file ({path})", path) for path in body_files)
    writes: list[_File] = []
    if output is None or output == "-":
        stdout = _File.open("stdout", 1)
        if stdout is not None:
            writes.append(stdout)
    else:
        writes.append(_File.at(f"-o {output}", output))
    if state is not None:
        writes.append(_File.at(f"--state {state}", state))
    for kind, path in reports:
        if os.path.isdir(path):
            return f"--report {kind}={path} is a folder: name the file to write"
        writes.append(_File.at(f"--report {kind}={path}", path))
    if history is not None:
        writes.extend(_File.at(f"--history {history}", history + end) for end in ("", "-wal"))
    if cache_dir is not None:
        from afetch.cache import INDEX  # here: a run without --cache never imports sqlite3

        writes.extend(
            _File.at(f"--cache {cache_dir}'s {name}", os.path.join(cache_dir, name))
            for name in (INDEX, f"{INDEX}-wal", f"{INDEX}-shm")
        )
    for i, written in enumerate(writes):
        for read in reads:
            if read.identity == written.identity:
                return f"{written.label} is also {read.label}: it would be written over"
        for other in writes[i + 1 :]:
            if other.identity == written.identity:
                return f"{written.label} is also the {other.label}"
    if save_dir is not None:
        return _in_save_dir(save_dir, sources, [output, state, *(path for _, path in reports)])
    return None


def _in_save_dir(
    save_dir: str, sources: Sequence[str], outputs: Sequence[str | None]
) -> str | None:
    """A named file a saved body could replace: ``SAVE_DIR/HOST/NAME__HASH.EXT``."""
    folder = _File.at("", save_dir).identity
    named = [*sources, *(p for p in outputs if p not in (None, "-"))]
    for path in named:
        if path == "-" or not re.search(_SAVED_NAME, os.path.basename(path)):
            continue
        grandparent = os.path.dirname(os.path.dirname(os.path.realpath(path)))
        if _File.at("", grandparent).identity == folder:
            return f"{path} is inside --save-dir {save_dir} where a saved body could replace it"
    return None
