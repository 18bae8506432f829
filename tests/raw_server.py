"""A raw-socket server on 127.0.0.1 that answers each request with a scripted byte stream.

The loopback server (afetch._loopback) speaks correct HTTP with a few named faults; this one
sends whatever a test scripts, byte for byte: broken status lines, header floods, bad chunking,
early closes. A script is a list of steps, each run in order on the connection:

- ``bytes``: sent as they are;
- a ``float``: a pause, in seconds;
- :data:`RESET`: the connection is reset (RST), not closed;
- :data:`HOLD`: nothing more is sent until the client goes away.

After the last step the connection is closed. One response per connection: a client that keeps
the connection alive sees it closed, as after any ``Connection: close`` response.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from collections.abc import Sequence
from types import TracebackType

RESET = "reset"
HOLD = "hold"
Step = bytes | float | str
Script = Sequence[Step]

_MAX_REQUEST_HEAD = 65536


class RawServer:
    """Serves scripts at ``/s/<n>``; ``add(script)`` gives the URL that plays it.

    >>> with RawServer() as server:
    ...     url = server.add([b"HTTP/1.1 204 No Content\\r\\n\\r\\n"])
    >>> url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._listener.getsockname()[1]
        self._scripts: dict[str, Script] = {}
        self._ids = itertools.count()
        self._open: set[socket.socket] = set()
        #: The request target of every request received, in order.
        self.targets: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="raw-server", daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add(self, script: Script) -> str:
        key = str(next(self._ids))
        self._scripts[key] = script
        return f"http://127.0.0.1:{self.port}/s/{key}"

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            # Wakes the accept() blocked in _accept (close alone does not, on Linux): the
            # thread ends now, not when join's 5 s run out.
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for conn in list(self._open):
                with contextlib.suppress(OSError):
                    conn.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the accepting thread outlived close()"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            script = self._script_for(conn)
            if script is not None:
                self._play(conn, script)
        except OSError:
            pass  # the client went away mid-script: nothing to do
        finally:
            with self._lock:
                self._open.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _script_for(self, conn: socket.socket) -> Script | None:
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < _MAX_REQUEST_HEAD:
            data = conn.recv(4096)
            if not data:
                return None
            head += data
        words = head.split(b"\r\n", 1)[0].split(b" ")
        target = words[1].decode("latin-1") if len(words) > 1 else ""
        self.targets.append(target)
        # The script is named by the last segment after an /s/ segment: /x/../s/1 finds script 1
        # either way, and a redirect's target such as /r85/0 finds none (not script 0).
        parent, _, key = target.partition("?")[0].rpartition("/")
        return self._scripts.get(key) if parent.rpartition("/")[2] == "s" else None

    def _play(self, conn: socket.socket, script: Script) -> None:
        for step in script:
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, float):
                time.sleep(step)
            elif step == RESET:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            elif step == HOLD:
                conn.settimeout(None)
                while not self._closed.is_set() and conn.recv(4096):
                    pass
                return
