"""Record sinks: where the records go, as JSON Lines or CSV."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

from afetch._include import record_keys
from afetch._record import OPTIONAL_KEYS, SCHEMA_KEYS, WATCH_KEYS, Record, json_lines
from afetch._settings import Settings

#: CSV columns: the schema keys in order, with the nested error flattened into two columns.
CSV_BASE_COLUMNS = tuple(
    column
    for key in SCHEMA_KEYS
    for column in (("error_type", "error_message") if key == "error" else (key,))
)


class OutputClosed(Exception):
    """The reader of our output went away (``afetch ... | head``)."""


class OutputFailed(Exception):
    """Records cannot be written (disk full, quota, I/O error); the message says why."""


class Sink(Protocol):
    def encode(self, record: Record) -> bytes:
        """The record's line (and anything due before it), ready to write; any thread."""
        ...

    def encode_many(self, records: list[Record]) -> list[bytes]:
        """:meth:`encode` of each record, in order (the writer thread's batch)."""
        ...

    def finish(self) -> bytes:
        """What is still due at the end of a run (a CSV header without rows), or ``b""``."""
        ...

    def write(self, record: Record) -> None: ...

    def close(self) -> None: ...


def optional_keys(settings: Settings) -> tuple[str, ...]:
    """The optional record keys the options of ``settings`` turn on, in schema order.

    >>> optional_keys(Settings(save_dir="out"))
    ('path', 'sha256')
    """
    on = {
        "not_modified": settings.cache_dir is not None,
        "path": settings.save_dir is not None,
        "sha256": settings.hash_bodies or settings.save_dir is not None,
        "method": settings.method is not None or settings.body is not None,
        # Per request object only: a CSV has no column for it (any JSON value).
        "meta": False,
        "confirmed": settings.confirm,
    }
    return tuple(key for key in OPTIONAL_KEYS if on[key])


def included_keys(settings: Settings) -> tuple[str, ...]:
    """The record keys ``--include`` turns on, in record order.

    >>> included_keys(Settings(include=("json", "body")))
    ('body', 'body_truncated', 'json')
    """
    return record_keys(settings.include)


class _LineSink:
    """Hands every line to the OS at once (write + flush), also when the stream is a file.

    Whole lines only: each record is flushed as soon as it is written, and a signal only ends the
    run between two records, so the output never ends in a partial line.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def encode(self, record: Record) -> bytes:
        raise NotImplementedError

    def encode_many(self, records: list[Record]) -> list[bytes]:
        encode = self.encode
        return [encode(record) for record in records]

    def finish(self) -> bytes:
        return b""

    def write(self, record: Record) -> None:
        """Encode and write one record on the caller's thread (the library and tests)."""
        self._emit(self.encode(record))

    def _emit(self, line: bytes) -> None:
        try:
            self._stream.write(line)
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None
        except OSError as exc:
            raise OutputFailed(exc.strerror or str(exc)) from None

    def close(self) -> None:
        # Whatever failed here was already reported by the write that failed first.
        with contextlib.suppress(OSError):
            self._stream.close()


class JsonLinesSink(_LineSink):
    """One JSON record per line."""

    def __init__(
        self, stream: BinaryIO, *, optional: Sequence[str] = (), include: Sequence[str] = ()
    ) -> None:
        super().__init__(stream)
        self._optional = tuple(optional)
        self._include = tuple(include)

    def encode(self, record: Record) -> bytes:
        return (record.to_json(self._optional, self._include) + "\n").encode("utf-8")

    def encode_many(self, records: list[Record]) -> list[bytes]:
        return json_lines(records, self._optional, self._include)


def _csv_cell(value: Any) -> Any:
    # Same spelling as the JSON records: true/false, and an empty cell for null.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        # --include objects (headers, timings, tls...) as JSON text in their column.
        return _json_text(value)
    return value


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class CsvSink(_LineSink):
    """CSV with a header row; the nested error becomes ``error_type`` and ``error_message``.

    >>> import io
    >>> out = io.BytesIO()
    >>> sink = CsvSink(out)
    >>> sink.write(Record(url="http://127.0.0.1/a,b", status=200))
    >>> print(out.getvalue().decode().splitlines()[1][:36])
    "http://127.0.0.1/a,b",,200,true,,,0
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        optional: Sequence[str] = (),
        include: Sequence[str] = (),
        header: bool = True,
        watch: bool = False,
    ) -> None:
        super().__init__(stream)
        self._optional = tuple(optional)
        self._include = tuple(include)
        # --history's keys come last, as in the JSON records.
        self.columns = CSV_BASE_COLUMNS + self._optional + self._include + WATCH_KEYS * watch
        self._buffer = io.StringIO()
        import csv  # here: a JSON Lines run never loads it

        self._writer = csv.writer(self._buffer, lineterminator="\n")
        # Written with the first record (or by finish() for a run without any), so a closed
        # output is noticed where the run handles it.
        self._header_due = header

    def _row(self, cells: Sequence[Any]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(cells)
        return self._buffer.getvalue().encode("utf-8")

    def encode(self, record: Record) -> bytes:
        data = record.to_dict(self._optional, self._include)
        error = data.pop("error")
        data["error_type"] = None if error is None else error["type"]
        data["error_message"] = None if error is None else error["message"]
        if data.get("json") is not None:
            # Always JSON text, so that a JSON string stays apart from other JSON values.
            data["json"] = _json_text(data["json"])
        row = self._row([_csv_cell(data.get(column)) for column in self.columns])
        return self.finish() + row

    def finish(self) -> bytes:
        if not self._header_due:
            return b""
        self._header_due = False
        return self._row(self.columns)

    def close(self) -> None:
        with contextlib.suppress(OutputClosed, OutputFailed):
            if header := self.finish():
                self._emit(header)
        super().close()


def make_sink(
    stream: BinaryIO,
    *,
    format: str = "jsonl",
    optional: Sequence[str] = (),
    include: Sequence[str] = (),
    header: bool = True,
    watch: bool = False,
) -> Sink:
    """The sink for ``--format``; ``header=False`` when appending to a CSV that has one.
    ``optional`` and ``include`` are record keys (:func:`optional_keys`, :func:`included_keys`);
    ``watch``: CSV columns for the --history keys (JSON records carry them when they have them).
    """
    if format == "csv":
        return CsvSink(stream, optional=optional, include=include, header=header, watch=watch)
    return JsonLinesSink(stream, optional=optional, include=include)


def open_output(path: str | None, *, append: bool = False, format: str = "jsonl") -> BinaryIO:
    """stdout, or the named file (truncated, or appended to with ``--resume``), as a binary
    stream the sink owns.

    A file appended to is first cut back to its last whole record: a run killed in the middle
    of a write (or an older afetch on a full disk) may have left part of one, and records
    appended to it would be glued onto it. That record was never journaled: the resumed run
    fetches it again. (stdout is left alone: what the shell appends to is not afetch's.)
    """
    if path is None or path == "-":
        return os.fdopen(os.dup(1), "wb")
    # Appending reads too: the tail is checked for a record cut short.
    stream = open(path, "a+b" if append else "wb")  # noqa: SIM115 (the sink closes it)
    if append:
        try:
            fd = stream.fileno()
            end = os.fstat(fd).st_size
            whole = _csv_whole_end(fd, end) if format == "csv" else _jsonl_whole_end(fd, end)
            if whole < end:
                os.ftruncate(fd, whole)
        except OSError:
            stream.close()
            raise
    return stream


_CHUNK = 1 << 20


def _jsonl_whole_end(fd: int, end: int) -> int:
    """Where the last whole line of a JSON Lines file ends (JSON text has no raw newline)."""
    at = end
    while at > 0:
        start = max(0, at - _CHUNK)
        newline = os.pread(fd, at - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        at = start
    return 0


def _csv_whole_end(fd: int, end: int) -> int:
    """Where the last whole row of a CSV file ends: a newline outside quotes (a cell may hold
    newlines; quotes inside a quoted cell are doubled, so the count of quotes before a newline
    is even exactly when it ends a row). Whole when it ends in a newline after an even count of
    quotes (one quick pass); else a second pass finds the last row boundary."""
    quotes = sum(
        os.pread(fd, min(_CHUNK, end - at), at).count(b'"') for at in range(0, end, _CHUNK)
    )
    if end == 0 or (quotes % 2 == 0 and os.pread(fd, 1, end - 1) == b"\n"):
        return end
    quotes, whole, at = 0, 0, 0
    while at < end:
        chunk = os.pread(fd, min(_CHUNK, end - at), at)
        if not chunk:
            break
        lines = chunk.split(b"\n")
        offset = at
        for line in lines[:-1]:
            quotes += line.count(b'"')
            offset += len(line) + 1
            if quotes % 2 == 0:
                whole = offset
        quotes += lines[-1].count(b'"')
        at += len(chunk)
    return whole


def output_is_empty(stream: BinaryIO) -> bool:
    """False when the stream is a regular file that already holds data (``>>`` or a resumed
    ``-o``): a CSV header is then already there."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return True
    return not stat.S_ISREG(info.st_mode) or info.st_size == 0
