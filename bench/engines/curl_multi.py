"""Contender: libcurl (pycurl) driven by the asyncio loop through the multi "socket" interface.

Usage: python bench/engines/curl_multi.py URLS_FILE -c N [--per-host N] [--uvloop]
       [--idle-reader [--close-hook] | --own-epoll]

The pattern of Tornado's curl_httpclient.py, trimmed to the hot path: libcurl tells us which
sockets it wants watched (SOCKETFUNCTION) and when it wants a timeout (TIMERFUNCTION); the loop
calls ``socket_action`` back. N worker tasks pull URLs from one iterator, each owning one easy
handle that it reuses; finished transfers come back through ``info_read`` and wake the worker.
Writes one JSON line per URL (url, status, bytes, elapsed) to stdout. Exits 1 if any URL failed.

``--idle-reader``: libcurl removes a keep-alive socket when its transfer ends and adds it back on
reuse (two epoll_ctl calls per request). With this flag the reader stays registered while the
socket idles; a readable idle socket (the server closed it) is dropped then, and a re-armed fd
whose inode changed (libcurl closed it and the number was reused) is registered afresh.
``--close-hook``: the same, but libcurl's CLOSESOCKETFUNCTION tells us when it closes a socket,
so no fstat is needed on either side (the reader goes when the socket goes).
``--own-epoll`` (Linux): libcurl's sockets live in an epoll of the driver's own and the loop
watches only its fd; a turn hands every ready socket to ``socket_action`` from one ``poll()``.
Idle sockets stay registered; a re-armed fd whose socket was closed meanwhile makes ``modify``
fail with ENOENT (epoll dropped it) and is registered afresh. What afetch's engine does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import pycurl

IN, OUT = 1, 2  # our bit mask of what the loop watches for an fd


class CurlDriver:
    """One CurlMulti on the running asyncio loop."""

    def __init__(
        self, *, concurrency: int, per_host: int, idle_reader: bool, close_hook: bool
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, concurrency)
        self.multi.setopt(pycurl.M_MAXCONNECTS, concurrency)
        if per_host:
            self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, per_host)
        self.idle_reader = idle_reader
        self.close_hook = close_hook
        self.watched: dict[int, int] = {}  # fd -> IN|OUT the loop watches now
        self.idle: dict[int, int] = {}  # fd -> inode, reader kept while libcurl does not want it
        self.timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self.waiters: dict[pycurl.Curl, asyncio.Future[int]] = {}
        self.handles: list[pycurl.Curl] = []  # closed after the multi: its cached
        # connections close through their handles' CLOSESOCKETFUNCTION

    # libcurl -> loop ---------------------------------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        old = self.watched.get(fd, 0)
        if what == pycurl.POLL_REMOVE:
            if self.idle_reader and old == IN:
                if self.close_hook:
                    self.idle[fd] = 0  # _on_close forgets it when libcurl closes it
                    return
                # Keep the reader; remember which socket it was, to spot a reused fd number.
                try:
                    self.idle[fd] = os.fstat(fd).st_ino
                except OSError:
                    self._set(fd, old, 0)
                return
            self._set(fd, old, 0)
            return
        want = {pycurl.POLL_IN: IN, pycurl.POLL_OUT: OUT, pycurl.POLL_INOUT: IN | OUT}[what]
        if fd in self.idle:
            inode = self.idle.pop(fd)
            # With the close hook any close went through _on_close: it is the same socket.
            same = self.close_hook or self._same_socket(fd, inode)
            if not same:
                # libcurl closed the socket and a new one got its number: the loop's
                # registration is stale (epoll dropped it on close); start over.
                self.loop.remove_reader(fd)
                self.watched.pop(fd, None)
                old = 0
        self._set(fd, old, want)

    @staticmethod
    def _same_socket(fd: int, inode: int) -> bool:
        try:
            return os.fstat(fd).st_ino == inode
        except OSError:
            return False

    def _on_close(self, fd: int) -> int:
        """CLOSESOCKETFUNCTION (--close-hook): unwatch, then close, as libcurl would have."""
        self.idle.pop(fd, None)
        self._set(fd, self.watched.get(fd, 0), 0)
        os.close(fd)
        return 0

    def _set(self, fd: int, old: int, new: int) -> None:
        """Touch the loop only for what changed."""
        if old == new:
            return
        if new & IN and not old & IN:
            self.loop.add_reader(fd, self._on_ready, fd, pycurl.CSELECT_IN)
        elif old & IN and not new & IN:
            self.loop.remove_reader(fd)
        if new & OUT and not old & OUT:
            self.loop.add_writer(fd, self._on_ready, fd, pycurl.CSELECT_OUT)
        elif old & OUT and not new & OUT:
            self.loop.remove_writer(fd)
        if new:
            self.watched[fd] = new
        else:
            self.watched.pop(fd, None)

    def _on_timer(self, timeout_ms: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if timeout_ms < 0:
            return
        if timeout_ms == 0:
            self.timer = self.loop.call_soon(self._on_timeout)
        else:
            self.timer = self.loop.call_later(timeout_ms / 1000, self._on_timeout)

    # loop -> libcurl ---------------------------------------------------------------------

    def _on_ready(self, fd: int, event: int) -> None:
        if fd in self.idle:
            # An idle keep-alive socket turned readable: the server closed it (or sent junk).
            # libcurl notices on reuse; we just stop watching so the loop does not spin.
            del self.idle[fd]
            self._set(fd, self.watched.get(fd, 0), 0)
            return
        self._action(fd, event)

    def _on_timeout(self) -> None:
        self.timer = None
        self._action(pycurl.SOCKET_TIMEOUT, 0)

    def _action(self, fd: int, event: int) -> None:
        while True:
            ret, _running = self.multi.socket_action(fd, event)
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, ok, failed = self.multi.info_read()
            for handle in ok:
                self._finish(handle, 0)
            for handle, errno, _message in failed:
                self._finish(handle, errno)
            if not queued:
                return

    def _finish(self, handle: pycurl.Curl, errno: int) -> None:
        self.multi.remove_handle(handle)
        waiter = self.waiters.pop(handle)
        if not waiter.done():
            waiter.set_result(errno)

    # API ----------------------------------------------------------------------------------

    async def perform(self, handle: pycurl.Curl) -> int:
        """Run one transfer on ``handle``; 0 or libcurl's error number."""
        waiter = self.loop.create_future()
        self.waiters[handle] = waiter
        self.multi.add_handle(handle)  # libcurl asks for a 0 ms timer: the loop starts it
        return await waiter

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for fd, mask in list(self.watched.items()):
            self._set(fd, mask, 0)
        self.multi.close()
        for handle in self.handles:
            handle.close()


class EpollDriver(CurlDriver):
    """--own-epoll: the sockets in an epoll of the driver's own, one reader on the loop."""

    #: libcurl's POLL_IN, POLL_OUT, POLL_INOUT (1, 2, 3) → epoll's events.
    EVENTS = (0, select.EPOLLIN, select.EPOLLOUT, select.EPOLLIN | select.EPOLLOUT)

    def __init__(self, *, concurrency: int, per_host: int) -> None:
        super().__init__(
            concurrency=concurrency, per_host=per_host, idle_reader=True, close_hook=False
        )
        self.epoll = select.epoll()
        self.loop.add_reader(self.epoll.fileno(), self._on_poll)

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in self.watched:
                self.idle[fd] = 0  # kept registered while it idles
            return
        events = self.EVENTS[what]
        if fd in self.idle:
            del self.idle[fd]
            try:
                self.epoll.modify(fd, events)
            except FileNotFoundError:  # closed while idle: the number names a new socket
                self.epoll.register(fd, events)
        elif fd in self.watched:
            if self.watched[fd] != what:
                self.epoll.modify(fd, events)
        else:
            self.epoll.register(fd, events)
        self.watched[fd] = what

    def _on_poll(self) -> None:
        action, idle = self.multi.socket_action, self.idle
        for fd, events in self.epoll.poll(0):
            if fd in idle:
                del idle[fd]  # the server closed an idle socket: stop watching it
                del self.watched[fd]
                with contextlib.suppress(OSError):
                    self.epoll.unregister(fd)
                continue
            flags = pycurl.CSELECT_IN if events & ~select.EPOLLOUT else 0
            action(fd, flags | (pycurl.CSELECT_OUT if events & select.EPOLLOUT else 0))
        self._collect()

    def close(self) -> None:
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()
        self.watched.clear()  # none of them is on the loop: nothing for CurlDriver to remove
        super().close()


def new_handle(driver: CurlDriver) -> pycurl.Curl:
    handle = pycurl.Curl()
    if driver.close_hook:
        handle.setopt(pycurl.CLOSESOCKETFUNCTION, driver._on_close)
    handle.setopt(pycurl.NOSIGNAL, 1)
    # pycurl 7.49 lacks PROTOCOLS_STR: the bitmask form.
    handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    handle.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    handle.setopt(pycurl.CONNECTTIMEOUT, 10)
    handle.setopt(pycurl.TIMEOUT, 30)
    driver.handles.append(handle)
    return handle


async def worker(driver: CurlDriver, urls: Iterator[str], out: TextIO) -> int:
    handle = new_handle(driver)
    failed = 0
    for url in urls:
        body = io.BytesIO()
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.WRITEFUNCTION, body.write)  # C method: no Python frame per chunk
        t0 = time.perf_counter()
        errno = await driver.perform(handle)
        elapsed = time.perf_counter() - t0
        status = handle.getinfo(pycurl.RESPONSE_CODE) if errno == 0 else None
        record = {"url": url, "status": status, "bytes": body.tell(), "elapsed": elapsed}
        if errno:
            record["error"] = f"curl error {errno}"
        if errno or status >= 400:
            failed += 1
        out.write(json.dumps(record) + "\n")
    return failed


async def main(args: argparse.Namespace) -> int:
    driver: CurlDriver
    if args.own_epoll:
        driver = EpollDriver(concurrency=args.concurrency, per_host=args.per_host)
    else:
        driver = CurlDriver(
            concurrency=args.concurrency,
            per_host=args.per_host,
            idle_reader=args.idle_reader or args.close_hook,
            close_hook=args.close_hook,
        )
    try:
        with open(args.urls) as source:
            urls = (line.strip() for line in source if line.strip())
            failed = await asyncio.gather(
                *(worker(driver, urls, sys.stdout) for _ in range(args.concurrency))
            )
    finally:
        driver.close()
    total = sum(failed)
    if total:
        print(f"curl_multi: {total} failed", file=sys.stderr)
    return 1 if total else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls")
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--idle-reader", action="store_true")
    parser.add_argument("--close-hook", action="store_true")
    parser.add_argument("--own-epoll", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.uvloop:
        import uvloop

        raise SystemExit(uvloop.run(main(arguments)))
    raise SystemExit(asyncio.run(main(arguments)))
