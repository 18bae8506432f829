"""Reading URL lists lazily, without ever blocking the event loop.

A daemon thread reads each source in chunks and hands them to the loop through a small bounded
queue: memory stays flat for any list size, a slow producer on stdin never stalls requests in
flight, and an interrupted run never waits for a thread stuck in ``read``.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence

from afetch._spec import RequestSpec, parse_request

STDIN = "-"
_BOM = "\ufeff"
_BOM_BYTES = b"\xef\xbb\xbf"
_STDIN_FD = 0
_CHUNK = 1 << 16
_QUEUED_CHUNKS = 4
#: A longer line (binary data, /dev/zero) yields one record for its start; the rest is skipped,
#: so memory stays bounded whatever the input.
MAX_LINE = 1 << 20


class InputError(Exception):
    """A source cannot be read (missing, a directory, no permission)."""


def url_from_line(line: str) -> str | RequestSpec | None:
    """The URL a line holds, or None for blank lines and ``#`` comments; a line starting with
    ``{`` is a request object (:mod:`afetch._spec`), valid or not.

    >>> url_from_line("  https://example.org/  "), url_from_line("# note"), url_from_line("")
    ('https://example.org/', None, None)
    >>> url_from_line('{"url": "https://example.org/", "method": "DELETE"}').method
    'DELETE'
    """
    text = line.strip()
    if not text:
        return None
    first = text[0]
    if first == _BOM:
        # A UTF-8 byte order mark (Notepad's "UTF-8 with BOM", or one per file catenated with
        # cat): never part of a URL.
        text = text[1:].strip()
        if not text:
            return None
        first = text[0]
    if first == "#":
        return None
    if first == "{":
        return parse_request(text)
    return text


def open_sources(sources: Sequence[str]) -> list[int]:
    """Open every source up front so a bad path is a usage error before any request is sent."""
    fds: list[int] = []
    for source in sources:
        if source == STDIN:
            fds.append(_STDIN_FD)
            continue
        try:
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))  # Windows: no CRLF games
        except OSError as exc:
            for opened in fds:
                if opened != _STDIN_FD:
                    os.close(opened)
            hint = ""
            if "://" in source:
                hint = " (SOURCES are files of URLs: to fetch one URL, pipe it: echo URL | afetch)"
            raise InputError(f"cannot read {source}: {exc.strerror or exc}{hint}") from None
        if os.path.isdir(source):
            os.close(fd)
            raise InputError(f"cannot read {source}: is a directory")
        fds.append(fd)
    return fds


def _read_chunks(fds: Iterable[int]) -> Iterator[bytes]:
    for fd in fds:
        try:
            while chunk := os.read(fd, _CHUNK):
                yield chunk
            yield b"\n"  # a last line without a newline still ends at the end of its source
        finally:
            if fd != _STDIN_FD:
                os.close(fd)


async def read_urls(fds: Sequence[int]) -> AsyncIterator[str | RequestSpec]:
    """Yield the URLs (and request objects) in ``fds`` (already opened files), in order, one per
    non-blank line."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
    # At most _QUEUED_CHUNKS chunks wait: the thread takes a place before each hand-over, the
    # loop gives it back as it takes the chunk. The hand-over is a plain callback, never a
    # coroutine made on the thread: one the loop had no turn left to start was dropped
    # unawaited at its close, and Python printed a RuntimeWarning on stderr (full-disk runs).
    places = threading.Semaphore(_QUEUED_CHUNKS)
    abandoned = threading.Event()

    def pump() -> None:
        def hand_over(item: bytes | BaseException | None) -> None:
            while not places.acquire(timeout=0.1):
                if abandoned.is_set() or loop.is_closed():
                    raise RuntimeError("abandoned")
            loop.call_soon_threadsafe(queue.put_nowait, item)

        try:
            try:
                for chunk in _read_chunks(fds):
                    if abandoned.is_set():
                        return
                    hand_over(chunk)
            except OSError as exc:
                hand_over(exc)
            hand_over(None)
        except RuntimeError:
            # The loop is closed, or the run stopped reading: it was interrupted (or ended
            # early) and nobody needs the rest.
            pass

    threading.Thread(target=pump, name="afetch-input", daemon=True).start()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    skipping = False  # inside the rest of an over-long line
    try:
        while (item := await queue.get()) is not None:
            places.release()
            if isinstance(item, BaseException):
                raise InputError(f"reading input failed: {item}")
            # CR alone ends a line too (classic Mac files); CRLF leaves a blank line, skipped.
            text = decoder.decode(item).replace("\r", "\n")
            if skipping:
                newline = text.find("\n")
                if newline < 0:
                    continue
                text, skipping = text[newline + 1 :], False
            lines = (pending + text).split("\n")
            pending = lines.pop()
            for line in lines:
                url = url_from_line(line)
                if url is not None:
                    yield url
            if len(pending) > MAX_LINE:
                url = url_from_line(pending[:MAX_LINE])
                if url is not None:
                    yield url
                pending, skipping = "", True
    finally:
        # A pump waiting for a place sees within 0.1 s that it is no longer wanted.
        abandoned.set()


def url_counter(fds: Sequence[int]) -> Callable[[], int] | None:
    """A function counting the URLs in the open sources ``fds`` (for the progress total), or
    None when one is not a regular file (a pipe, a FIFO, a terminal, ``<(cmd)``): reading it
    would take its lines from the run.

    Call it before the reader starts: it notes the offset each descriptor is at, and the
    function (which may run in a thread) reads with ``pread`` from there, never moving the
    reader's position. An estimate: a line of only non-ASCII spaces counts.
    """
    if not hasattr(os, "pread"):
        return None  # Windows: no pread, and a dup() would share the reader's offset
    if not all(stat.S_ISREG(os.fstat(fd).st_mode) for fd in fds):
        return None
    # Copies: the reader closes its descriptors at their end, maybe before the count is done,
    # and a number closed there could be reused for another file.
    starts = [(os.dup(fd), os.lseek(fd, 0, os.SEEK_CUR)) for fd in fds]

    def count() -> int:
        try:
            return sum(_count_lines(fd, start) for fd, start in starts)
        finally:
            for fd, _ in starts:
                os.close(fd)

    return count


def count_urls(paths: Sequence[str]) -> int | None:
    """How many URLs the files ``paths`` hold (None if one is not a regular file). A path is
    checked before it is opened: opening a FIFO would wait for a writer, and reading a pipe-like
    source would take its lines."""
    if not all(path != "-" and stat.S_ISREG(os.stat(path).st_mode) for path in paths):
        return None
    fds = open_sources(paths)
    try:
        counter = url_counter(fds)
        return None if counter is None else counter()
    finally:
        for fd in fds:
            if fd != _STDIN_FD:
                os.close(fd)


def _count_lines(fd: int, offset: int) -> int:
    total = 0
    pending = b""
    while chunk := os.pread(fd, _CHUNK, offset):
        offset += len(chunk)
        lines = (pending + chunk.replace(b"\r", b"\n")).split(b"\n")
        pending = lines.pop()
        total += sum(1 for line in lines if _counts(line))
    return total + _counts(pending)


def _counts(line: bytes) -> bool:
    text = line.strip()
    if text.startswith(_BOM_BYTES):
        text = text[3:].strip()
    return bool(text) and not text.startswith(b"#")
