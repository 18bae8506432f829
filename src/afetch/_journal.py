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

Loaded for ``--resume``, each URL costs a 16-byte BLAKE2b digest in a set, not the URL text:
about 83 bytes per URL with CPython's object and set overhead (measured: 83 MB for 1M URLs).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator

from afetch._spec import RequestSpec, request_key

_CHUNK = 1 << 20
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: offsets must be bytes on disk, no CRLF
_SYNC_INTERVAL = 1.0


def url_key(url: str) -> bytes:
    """The compact key a journaled URL is remembered by.

    >>> len(url_key("https://example.org/"))
    16
    """
    return _key(url.encode("utf-8", "surrogatepass"))


def _key(data: bytes) -> bytes:
    import hashlib  # here: a run without --state never loads it (OpenSSL, ~5 ms)

    return hashlib.blake2b(data, digest_size=16).digest()


def load_done(path: str) -> set[bytes]:
    """Keys of the URLs journaled in ``path`` (none if it does not exist); cuts a torn tail.

    Blocking: call it in a thread.
    """
    done: set[bytes] = set()
    try:
        fd = os.open(path, os.O_RDWR | _BINARY)
    except FileNotFoundError:
        return done
    try:
        pending = b""
        complete_upto = 0
        offset = 0
        while chunk := os.read(fd, _CHUNK):
            offset += len(chunk)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if line:
                    done.add(_key(line))
            complete_upto = offset - len(pending)
        if pending:
            # A crash mid-line: that URL's record may not exist, so it is not done.
            os.ftruncate(fd, complete_upto)
    finally:
        os.close(fd)
    return done


class Journal:
    """Appends completed URLs to ``path``; ``append=False`` starts it afresh (a new run).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state")
    >>> journal = Journal(path, append=False)
    >>> journal.add("http://127.0.0.1/a")
    >>> journal.close()
    >>> url_key("http://127.0.0.1/a") in load_done(path)
    True
    """

    def __init__(self, path: str, *, append: bool, sync_first: int | None = None) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _BINARY | (0 if append else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o644)
        # Our own copy of the output's descriptor, synced before the journal: the sink may close
        # its stream first, and a number closed there could be reused for another file.
        self._sync_first = None if sync_first is None else os.dup(sync_first)
        self._written = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._syncer = threading.Thread(target=self._sync_loop, name="afetch-fsync", daemon=True)
        self._syncer.start()

    def add(self, url: str) -> None:
        """Record ``url`` as done: one ``write`` system call, no Python-side buffer."""
        data = url.encode("utf-8", "surrogatepass") + b"\n"
        while data:
            data = data[os.write(self._fd, data) :]
        self._written += 1

    def add_many(self, urls: list[str]) -> None:
        """Record several URLs as done with one ``write`` (the writer thread, after a batch)."""
        data = "".join(f"{url}\n" for url in urls).encode("utf-8", "surrogatepass")
        while data:
            data = data[os.write(self._fd, data) :]
        self._written += len(urls)

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
    urls: AsyncIterator[str | RequestSpec], done: set[bytes]
) -> AsyncIterator[str | RequestSpec]:
    """The URLs of ``urls`` not journaled as done by an earlier run."""
    async for url in urls:
        if url_key(url if type(url) is str else request_key(url)) not in done:
            yield url
