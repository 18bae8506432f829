"""The ``--state`` journal: which URLs are done, so ``--resume`` can skip them after a crash.

The journal is a text file with one URL per line (for a request object, an input line starting
with ``{``, a digest of its method, URL and body: :func:`afetch._spec.request_key`), appended
with ``os.write`` right after the record reached the output (by the writer thread of
``_writer``, one write per batch of records written): both are in the kernel before anything
else is journaled, so ``kill -9`` loses nothing already emitted. The order matters. A URL
journaled before its record was written would be skipped on resume although its record never
appeared; writing the record first means a crash
between the two writes costs at most one batch of duplicate records, never a missing one.

``fsync`` (for power loss, not for crashes) runs in a background thread at most once a second
and at close, the output file first, then the journal. A torn last line (a crash mid-write) is
cut off when the journal is opened again.

A URL whose record was not ok is journaled as `` ! URL`` (a space first: a key, a stripped
input line, never starts with one), so a resumed run's exit code and summary cover the URLs done
before; a journal from before this mark reads as all ok. The line `` finished`` marks a run that
read all its input and wrote every record: ``--resume`` on such a journal starts a new run (the
fixed-name nightly recipe, ``--state run.state --resume``, is then right every night). Older
afetch versions read both marks as URLs never seen, so they refetch the failures: safe.

The journal is locked (``flock``, exclusive, not waiting) from open to exit: a second run on it
is a usage error, where both would fetch everything and interleave their lines.

Loaded for ``--resume``, each URL costs a 16-byte BLAKE2b digest in a set, not the URL text:
about 83 bytes per URL with CPython's object and set overhead (docs/performance.md, History).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from afetch._spec import RequestSpec, request_key

if TYPE_CHECKING:
    from afetch._record import Record
    from afetch._stats import Stats

try:
    import fcntl
except ImportError:  # Windows: no lock
    fcntl = None  # type: ignore[assignment]

_CHUNK = 1 << 20
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: offsets must be bytes on disk, no CRLF
_SYNC_INTERVAL = 1.0
#: A line starting with a space is a mark, never a key: keys are stripped input lines.
_NOT_OK = b" ! "
_FINISHED = b" finished"


def url_key(url: str) -> bytes:
    """The compact key a journaled URL is remembered by.

    >>> len(url_key("https://example.org/"))
    16
    """
    return _key(url.encode("utf-8", "surrogatepass"))


def url_keys(urls: list[str]) -> list[bytes]:
    """:func:`url_key` of each of ``urls`` (a batch: no call per URL).

    >>> url_keys(["https://example.org/"]) == [url_key("https://example.org/")]
    True
    """
    import hashlib

    blake2b = hashlib.blake2b
    return [blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).digest() for url in urls]


def _key(data: bytes) -> bytes:
    import hashlib  # here: a run without --state never loads it (OpenSSL, ~5 ms)

    return hashlib.blake2b(data, digest_size=16).digest()


class JournalBusy(Exception):
    """Another run holds the journal (``--state``): two runs on one journal would each fetch
    everything and interleave their lines."""


@dataclass(slots=True)
class Journaled:
    """What a journal says about an earlier run."""

    #: Keys of the URLs journaled as done, ok or not.
    done: set[bytes] = field(default_factory=set)
    #: Keys of those whose record was not ok (a subset of ``done``).
    failed: set[bytes] = field(default_factory=set)
    #: The earlier run finished: all its input read and every record written.
    finished: bool = False


def _take_lock(fd: int, path: str) -> None:
    if fcntl is None:
        return  # Windows: not locked (docs/cron-and-pipelines.md)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise JournalBusy(
            f"{path} is in use by another afetch run (--state takes a lock until that run ends)"
        ) from None


def _load(fd: int) -> Journaled:
    """Read the journal open at ``fd`` from its start; cut a torn last line off."""
    journaled = Journaled()
    done, failed = journaled.done, journaled.failed
    pending = b""
    complete_upto = 0
    offset = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        offset += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if not line:
                continue
            if line[0] != 0x20:  # a key: done and ok (a journal from before marks: ok)
                done.add(_key(line))
                journaled.finished = False
            elif line.startswith(_NOT_OK):
                key = _key(line[len(_NOT_OK) :])
                done.add(key)
                failed.add(key)
                journaled.finished = False
            elif line == _FINISHED:
                journaled.finished = True
        complete_upto = offset - len(pending)
    if pending:
        # A crash mid-line: that URL's record may not exist, so it is not done.
        os.ftruncate(fd, complete_upto)
    return journaled


def load_done(path: str) -> set[bytes]:
    """Keys of the URLs journaled in ``path`` (none if it does not exist); cuts a torn tail.

    Blocking: call it in a thread.
    """
    try:
        fd = os.open(path, os.O_RDWR | _BINARY)
    except FileNotFoundError:
        return set()
    try:
        return _load(fd).done
    finally:
        os.close(fd)


class Journal:
    """Appends completed URLs to ``path``, holding an exclusive lock on it until closed.

    ``resume=False`` starts it afresh (a new run); ``resume=True`` reads what it holds into
    :attr:`earlier` and appends, unless that run had finished: then it starts afresh too and
    :attr:`restarted` is True. Blocking (a large journal takes seconds to read): call it in a
    thread.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state")
    >>> journal = Journal(path, resume=False)
    >>> journal.add("http://127.0.0.1/a")
    >>> journal.close()
    >>> url_key("http://127.0.0.1/a") in load_done(path)
    True
    """

    def __init__(self, path: str, *, resume: bool) -> None:
        # Not O_TRUNC: a second run must not empty the journal before it finds the lock taken.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _BINARY, 0o644)
        try:
            _take_lock(self._fd, path)
            self.earlier = _load(self._fd) if resume else Journaled()
            self.restarted = self.earlier.finished
            if not resume or self.restarted:
                self.earlier = Journaled()
                os.ftruncate(self._fd, 0)
        except BaseException:
            os.close(self._fd)
            raise
        self._sync_first: int | None = None
        self._written = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._syncer = threading.Thread(target=self._sync_loop, name="afetch-fsync", daemon=True)
        self._syncer.start()

    def sync_output_first(self, fd: int) -> None:
        """fsync ``fd`` (the output) before the journal, at every sync."""
        # Our own copy of the output's descriptor: the sink may close its stream first, and a
        # number closed there could be reused for another file.
        with self._lock:
            self._sync_first = os.dup(fd)

    def add(self, url: str, *, ok: bool = True) -> None:
        """Record ``url`` as done: one ``write`` system call, no Python-side buffer."""
        self._write((b"" if ok else _NOT_OK) + url.encode("utf-8", "surrogatepass") + b"\n")
        self._written += 1

    def add_many(self, records: Sequence[Record]) -> None:
        """Record the URLs of ``records`` as done, each with its ok bit, in one ``write`` (the
        writer thread, after a batch). A request object is journaled by its key (method, URL,
        body), a plain line by its URL."""
        # A list, not a generator: join makes one of it anyway (no generator resumed per line).
        data = "".join(
            [
                f"{record.key or record.url}\n" if record.ok else f" ! {record.key or record.url}\n"
                for record in records
            ]
        )
        self._write(data.encode("utf-8", "surrogatepass"))
        self._written += len(records)

    def finish(self) -> None:
        """Mark the run finished (all input read, every record written): ``--resume`` then
        starts a new run instead of resuming this one."""
        self._write(_FINISHED + b"\n")

    def _write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self._fd, data) :]

    def _sync(self) -> None:
        with self._lock:
            if self._sync_first is not None:
                with contextlib.suppress(OSError):  # a pipe or a tty cannot be synced
                    os.fsync(self._sync_first)
            os.fsync(self._fd)

    def _sync_loop(self) -> None:
        synced = 0
        while not self._stop.wait(_SYNC_INTERVAL):
            written = self._written
            if written != synced:
                with contextlib.suppress(OSError):
                    self._sync()
                synced = written

    def close(self) -> None:
        self._stop.set()
        self._syncer.join()
        with contextlib.suppress(OSError):
            self._sync()
        os.close(self._fd)
        if self._sync_first is not None:
            os.close(self._sync_first)


async def skip_done(
    urls: AsyncIterator[str | RequestSpec], earlier: Journaled, stats: Stats
) -> AsyncIterator[str | RequestSpec]:
    """The URLs of ``urls`` not journaled as done by an earlier run; those skipped are counted
    in ``stats`` (``earlier``, ``earlier_ok``), so the run's summary and exit code still cover
    them."""
    done, failed = earlier.done, earlier.failed
    async for url in urls:
        key = url_key(url if type(url) is str else request_key(url))
        if key not in done:
            yield url
            continue
        stats.earlier += 1
        stats.earlier_ok += key not in failed
