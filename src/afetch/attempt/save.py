"""``--save-dir`` and ``--hash``: what happens to a body while it streams in.

A :class:`BodyConsumer` is made for each successful (2xx) response that has a body; the fetcher
calls ``feed`` for every chunk, ``finish`` at the end, and ``abort`` on any failure or
cancellation (a no-op after ``finish``).

Saving never blocks the event loop: chunks are batched (256 KiB) and written by a small thread
pool; a small body costs one thread hop (open, write, rename). The body goes to a temporary
name (``.NAME.RANDOM.part``) in its final folder and is renamed only when complete, so a failed
or interrupted download never leaves a file under its final name, and the temporary file is
removed. Files are opened relative to a folder descriptor with ``O_NOFOLLOW`` and
``O_EXCL``, so a symlink planted inside the folder cannot send a write elsewhere.

Naming scheme: ``DIR/HOST[_PORT]/STEM__HASH[.EXT]``. ``HASH`` is 16 hex digits of BLAKE2b over
the URL as given, so two URLs never share a file (whatever sanitising did to them) and a URL
always maps to the same file. ``STEM`` is the percent-decoded path and query with every run of
characters outside ``A-Za-z0-9._-`` (``/``, control characters, spaces, non-ASCII...) turned
into ``_``, runs of dots squeezed to one, leading dots, dashes and underscores removed, at most
120 characters, ``index`` when empty, and ``_`` put in front of Windows device names (``CON``,
``NUL``, ``COM1``...). ``EXT`` is the last segment's extension when it is 1-10 letters or
digits. Every component is ASCII and well under 255 bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from afetch._errors import AfetchError, ErrorType

_BATCH = 256 * 1024
_STEM_MAX = 120
_HOST_MAX = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")
_DOTS = re.compile(r"\.\.+")
_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
# Windows has neither O_NOFOLLOW nor O_DIRECTORY nor folder-relative calls: there files are made
# by path, and the host folder is checked for a symlink instead (docs/install.md, Windows).
_OPENAT = hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    # Our own pool (not asyncio's default) so abort() can order its clean-up after a write.
    global _executor
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="afetch-save")
    return _executor


class SaveError(AfetchError):
    """The body could not be written under ``--save-dir``."""

    error_type = ErrorType.SAVE


def _sanitise(text: str, limit: int) -> str:
    # No leading dot (hidden files, "..") or dash (read as an option by tools), no dot runs.
    return _DOTS.sub(".", _UNSAFE.sub("_", text)).lstrip("._-")[:limit]


def file_name(url: str) -> tuple[str, str]:
    """The (host folder, file name) a URL's body is saved under; see the module docstring.

    >>> file_name("http://127.0.0.1:8080/docs/report.pdf")
    ('127.0.0.1_8080', 'docs_report__54cfd2acf440c098.pdf')
    >>> file_name("http://h/%2e%2e%2f%2e%2e%2fetc/passwd")
    ('h', 'etc_passwd__c73a7deb2a15e815')
    """
    parts = urlsplit(url)
    host = _sanitise(parts.hostname or "", _HOST_MAX) or "_"
    with contextlib.suppress(ValueError):  # an out-of-range port
        if parts.port is not None:
            host = f"{host}_{parts.port}"
    path = unquote(parts.path, errors="replace")
    last = path.rsplit("/", 1)[-1]
    extension = ""
    if (match := _EXTENSION.search(last)) and match.start() > 0:
        extension = match.group()
        path = path[: len(path) - len(extension)]
    readable = path + ("?" + unquote(parts.query, errors="replace") if parts.query else "")
    stem = _sanitise(readable, _STEM_MAX).rstrip("_.") or "index"
    if stem.split(".")[0].lower() in _DEVICE_NAMES:
        stem = "_" + stem
    digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return host, f"{stem}__{digest}{extension}"


class BodyConsumer:
    """Hashes one body and, with a folder, streams it into a file there."""

    def __init__(self, url: str, save_dir: str | None) -> None:
        self._hasher = hashlib.sha256()
        self._save_dir = save_dir
        self._host, self._name = file_name(url) if save_dir is not None else ("", "")
        # Random (one getrandom call) only when there is a file to write.
        self._temp = f".{self._name}.{secrets.token_hex(6)}.part" if save_dir is not None else ""
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._dir_fd: int | None = None
        self._dir_path: str | None = None  # instead of _dir_fd where there is no openat
        self._fd: int | None = None
        self._pending: concurrent.futures.Future[None] | None = None
        self._renamed = False
        self._finished = False

    @property
    def saves(self) -> bool:
        """Whether there is a file to write (--save-dir), not only a hash."""
        return self._save_dir is not None

    def add(self, chunk: bytes) -> bool:
        """Take ``chunk`` (on the loop, as the engine delivers it); True when a batch is due:
        then :meth:`write` it before adding more."""
        self._hasher.update(chunk)
        if self._save_dir is None:
            return False
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        return self._buffered >= _BATCH

    def write(self) -> asyncio.Future[None]:
        """Write the batch :meth:`add` asked for, in the pool (fails with :class:`SaveError`)."""
        return asyncio.ensure_future(self._run(self._write, self._take()))

    def digest(self) -> str:
        """The body's sha256 (hex), of what was added so far."""
        return self._hasher.hexdigest()

    async def feed(self, chunk: bytes) -> None:
        if self.add(chunk):
            await self.write()

    async def finish(self) -> tuple[str | None, str]:
        """Complete the file (renamed to its final name); returns (path, sha256 hex)."""
        path = None
        if self._save_dir is not None:
            await self._run(self._commit, self._take())
            path = os.path.join(self._save_dir, self._host, self._name)
        self._finished = True
        return path, self._hasher.hexdigest()

    def abort(self) -> None:
        """Remove what was written; runs after any write still in progress in its thread."""
        if self._finished or self._save_dir is None:
            return
        self._finished = True
        pending = self._pending
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda _: self._clean_up())
        else:
            # On the loop, deliberately: one close and one unlink, on failure paths only, and
            # done by the time the record is out (no .part file outlives its failed record).
            self._clean_up()

    def _take(self) -> bytes:
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        return data

    async def _run(self, step: Callable[[bytes], None], data: bytes) -> None:
        self._pending = _pool().submit(step, data)
        try:
            await asyncio.wrap_future(self._pending)
        except OSError as exc:
            raise SaveError(f"cannot save the body: {exc.strerror or exc}") from exc

    # The methods below run in the pool's threads, one at a time per consumer.

    def _open(self) -> None:
        assert self._save_dir is not None
        if not _OPENAT:
            self._open_by_path()
            return
        try:
            root = os.open(self._save_dir, _DIR_FLAGS)
        except FileNotFoundError:  # the library does not go through the CLI, which makes DIR
            os.makedirs(self._save_dir, exist_ok=True)
            root = os.open(self._save_dir, _DIR_FLAGS)
        try:
            # O_NOFOLLOW: a symlink in place of the host folder is refused, not followed.
            try:
                self._dir_fd = os.open(self._host, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root)
            except FileNotFoundError:  # the first file of this host (open first: cheaper)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self._host, dir_fd=root)
                self._dir_fd = os.open(self._host, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root)
        finally:
            os.close(root)
        self._fd = os.open(self._temp, _FILE_FLAGS, 0o644, dir_fd=self._dir_fd)

    def _open_by_path(self) -> None:
        assert self._save_dir is not None
        folder = os.path.join(self._save_dir, self._host)
        # Checked, where O_NOFOLLOW would have the kernel refuse it (a junction too, on Windows).
        if os.path.islink(folder) or getattr(os.path, "isjunction", lambda _: False)(folder):
            raise OSError(errno.ELOOP, "the host folder is a symbolic link", folder)
        os.makedirs(folder, exist_ok=True)
        self._dir_path = folder
        self._fd = os.open(os.path.join(folder, self._temp), _FILE_FLAGS, 0o644)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._open()
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _commit(self, data: bytes) -> None:
        self._write(data)
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        # rename() replaces a symlink at the final name; it never writes through it.
        if self._dir_path is not None:
            temp, name = (os.path.join(self._dir_path, n) for n in (self._temp, self._name))
            os.replace(temp, name)  # Windows' rename() refuses to replace an existing file
        else:
            os.rename(self._temp, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        self._renamed = True
        self._close_dir()

    def _clean_up(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._dir_fd is not None:
            # Renamed but aborted (a deadline hit during the rename): the record says failed.
            name = self._name if self._renamed else self._temp
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._dir_fd)
        elif self._dir_path is not None:
            name = self._name if self._renamed else self._temp
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._dir_path, name))
        self._close_dir()

    def _close_dir(self) -> None:
        self._dir_path = None
        if self._dir_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)
            self._dir_fd = None
