"""The loop driver: libcurl's multi "socket" callbacks on the asyncio loop, the pattern of
Tornado's ``curl_httpclient``. Sockets are watched by the engine's poller, which the loop watches
as one reader; ``call_at`` keeps libcurl's timer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import pycurl

from afetch.engine.curl.poller import _CSELECT, _IN, _WANTED, _Poller

_POLL_IN = pycurl.POLL_IN
_POLL_OUT = pycurl.POLL_OUT
_POLL_REMOVE = pycurl.POLL_REMOVE
_SOCKET_TIMEOUT = pycurl.SOCKET_TIMEOUT
#: Ready sockets handed to libcurl in one turn of the loop; the rest wait for the next turn
#: (the poller stays readable). Each can cost a TLS handshake step and a finished transfer's
#: record: at -c 10,000 in the internet-like lab a turn that took all of epoll's 1,023 ran for
#: up to 8 s, so libcurl's timers fired that late ("connection timed out after 34,893 ms" under
#: --connect-timeout 10) and signals waited as long.
EVENTS_PER_TURN = 64
#: Finished transfers told in one turn (each runs its record's Python); the rest on the next
#: turns. One socket_action also ends every transfer whose deadline passed: under one
#: --timeout, thousands at once, whose records then held the loop for 20 s in one turn.
FINISHED_PER_TURN = 64


class _Slot(Protocol):
    """What the driver tells of a transfer libcurl finished (a :class:`_Transfer`)."""

    def finish(self, result: tuple[int, str] | None, /) -> None: ...


class LoopDriver:
    """libcurl's socket and timer callbacks, and the hand-back of readiness (a base of
    :class:`afetch.engine.curl.engine.CurlEngine`, which sets these attributes up)."""

    _loop: asyncio.AbstractEventLoop
    _multi: pycurl.CurlMulti
    _poller: _Poller
    #: Each easy handle's transfer. Not an attribute of the handle: pycurl looks a handle's own
    #: attributes up only after its type's lookup failed, an AttributeError raised and cleared
    #: per request (~2,000 instructions).
    _slot_of: dict[pycurl.Curl, _Slot]
    _watched: dict[int, int]
    _idle: set[int]
    _park_idle: bool
    _closed: bool
    _timer: asyncio.TimerHandle | asyncio.Handle | None
    _timer_due: float
    _timer_soon: bool
    _finish_soon: bool  # a call to tell more finished transfers is pending

    # A connection that goes idle in libcurl's pool is unregistered by libcurl and registered
    # again when reused: two epoll_ctl calls per request. Instead its reader stays registered
    # while it idles ("parked"); if it becomes readable meanwhile (the server closed it), it is
    # unregistered then. libcurl may also close a parked socket without telling us, and the
    # number may come back for a new socket. epoll forgets a socket at its last close, so
    # re-arming the number (modify) fails then, and the new socket is registered instead.

    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        watched = self._watched
        if what == _POLL_REMOVE or self._closed:
            had = watched.get(fd, 0)
            if had & _POLL_IN and self._park_idle and not self._closed:
                if had & _POLL_OUT:
                    self._poller.modify(fd, _IN)
                self._idle.add(fd)
                watched[fd] = _POLL_IN
            else:
                self._unwatch(fd)
            return
        idle = self._idle
        if fd in idle:
            idle.discard(fd)
            poller = self._poller
            if what & _POLL_OUT:
                # Asked to write first: most likely a new socket connecting under the number of
                # a parked one libcurl closed (a connection reused sends its request at once,
                # then asks to read); registering it first spares a failed call and its
                # exception (~6,000 instructions) per new connection.
                try:
                    poller.register(fd, _WANTED[what])
                except FileExistsError:  # the parked connection after all
                    poller.modify(fd, _WANTED[what])
            else:
                try:
                    poller.modify(fd, _WANTED[what])
                except FileNotFoundError:  # the parked socket was closed: the number is new
                    poller.register(fd, _WANTED[what])
            watched[fd] = what
            return
        had = watched.get(fd, 0)
        if what == had:
            return
        if had:
            self._poller.modify(fd, _WANTED[what])
        else:
            self._poller.register(fd, _WANTED[what])
        watched[fd] = what

    def _unwatch(self, fd: int) -> None:
        self._idle.discard(fd)
        if self._watched.pop(fd, 0):
            with contextlib.suppress(OSError):  # a closed socket: the poller dropped it already
                self._poller.unregister(fd)

    def _ready(self) -> None:
        """The poller has events (the loop saw its fd readable): hand each one to libcurl."""
        if self._closed:
            return
        action = self._multi.socket_action
        idle = self._idle
        for fd, events in self._poller.poll(0, EVENTS_PER_TURN):
            if fd in idle:
                # A parked connection stirred (closed by the server): libcurl finds out on reuse.
                self._unwatch(fd)
            else:
                action(fd, _CSELECT[events & 31])
        self._finished()

    def _on_timer(self, ms: int) -> None:
        # A wake-up earlier than libcurl asked for is harmless (it re-arms its timer), so a
        # pending one is kept when it is due no later: no cancel-and-allocate per request.
        # -1 ("no timeout") leaves a pending wake-up in place for the same reason. libcurl
        # calls this two or three times per request: a wake-up already due this turn of the
        # loop answers every call without even reading the clock.
        if self._timer_soon or ms < 0 or self._closed:
            return
        timer = self._timer
        if ms == 0:
            if timer is not None:
                timer.cancel()
            # "As soon as possible"; socket_action may not be called from in here.
            self._timer = self._loop.call_soon(self._on_timeout)
            self._timer_soon = True
            return
        due = self._loop.time() + ms / 1000
        if timer is not None:
            if self._timer_due <= due:
                return
            timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        self._timer_soon = False
        if self._closed:
            return
        self._multi.socket_action(_SOCKET_TIMEOUT, 0)
        self._finished()

    def _finished(self) -> None:
        """Tell the transfers libcurl finished, after a socket_action: FINISHED_PER_TURN at
        most; if more are queued, the rest on the next turn of the loop."""
        info_read = self._multi.info_read
        slot_of = self._slot_of
        left = FINISHED_PER_TURN
        while left > 0:
            queued, done, failed = info_read(left)
            for curl in done:
                slot_of[curl].finish(None)
            for curl, code, message in failed:
                slot_of[curl].finish((code, message))
            left -= len(done) + len(failed)
            if not queued or not (done or failed):
                return
        if not self._finish_soon:
            self._finish_soon = True
            self._loop.call_soon(self._finish_more)

    def _finish_more(self) -> None:
        self._finish_soon = False
        if not self._closed:
            self._finished()
