"""The engine's socket watcher: an epoll of its own (a ``selectors`` poller where there is
none), which the event loop watches as one reader."""

from __future__ import annotations

import contextlib
import select
import selectors
from typing import Protocol

import pycurl

#: epoll's event bits (select.EPOLLIN ...; spelled out: select has no epoll off Linux).
_IN, _OUT, _ERR, _HUP = 0x001, 0x004, 0x008, 0x010
#: libcurl's wanted events (POLL_IN 1, POLL_OUT 2, POLL_INOUT 3) → the poller's.
_WANTED = (0, _IN, _OUT, _IN | _OUT)
#: The poller's events (their low five bits) → libcurl's CSELECT flags.
_CSELECT = tuple(
    (pycurl.CSELECT_IN if e & (_IN | _HUP | _ERR) else 0)
    | (pycurl.CSELECT_OUT if e & _OUT else 0)
    | (pycurl.CSELECT_ERR if e & _ERR else 0)
    for e in range(32)
)


class _Poller(Protocol):
    """What the engine asks of its socket watcher: ``select.epoll``'s calls.

    The engine's sockets live in a poller of their own and the loop watches only the poller's
    fd. A ready socket then costs a tuple from ``poll``, not the loop's selector key, event mask,
    handle and callback run per socket; registering one is a C call, not ``add_reader``'s
    bookkeeping (10k × 1 KB: 1.87 → 1.62 s in the seventh round's run, docs/performance.md)."""

    def fileno(self) -> int: ...
    def register(self, fd: int, eventmask: int, /) -> None: ...
    def modify(self, fd: int, eventmask: int, /) -> None: ...
    def unregister(self, fd: int, /) -> None: ...
    def poll(self, timeout: float, maxevents: int = -1, /) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...


#: select.epoll where there is one (Linux); parking relies on its forgetting a closed socket.
_EPOLL: type | None = getattr(select, "epoll", None)
if _EPOLL is None and not hasattr(selectors.DefaultSelector, "fileno"):
    # Only select() or poll() here: nothing the loop could watch as one descriptor.
    # open_engine then uses httpx's own transport, as where pycurl is missing.
    raise ImportError("the libcurl engine needs epoll or kqueue")


class _SelectorPoller:
    """The poller on ``selectors`` (kqueue on macOS and the BSDs), with epoll's event bits.

    It keeps a key per registered number even after the socket closed, so a stale registration
    could not be told from a new socket's: the engine parks no sockets on it.

    >>> import socket
    >>> a, b = socket.socketpair()
    >>> poller = _SelectorPoller()
    >>> poller.register(a.fileno(), _IN | _OUT)
    >>> [events for fd, events in poller.poll(0)] == [_OUT]
    True
    >>> _ = b.send(b"x")
    >>> [events for fd, events in poller.poll(0)] == [_IN | _OUT]
    True
    >>> poller.unregister(a.fileno()); poller.close(); a.close(); b.close()
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        #: Ready events selected but not yet handed out (``maxevents``): served first, so
        #: every ready socket gets its turn, as epoll's rotating ready list gives it.
        self._backlog: list[tuple[int, int]] = []

    def fileno(self) -> int:
        return self._selector.fileno()  # type: ignore[attr-defined,no-any-return]

    def register(self, fd: int, eventmask: int, /) -> None:
        self._selector.register(fd, _selector_events(eventmask))

    def modify(self, fd: int, eventmask: int, /) -> None:
        self._selector.modify(fd, _selector_events(eventmask))

    def unregister(self, fd: int, /) -> None:
        with contextlib.suppress(KeyError):
            self._selector.unregister(fd)
        if self._backlog:
            self._backlog = [event for event in self._backlog if event[0] != fd]

    def poll(self, timeout: float, maxevents: int = -1, /) -> list[tuple[int, int]]:
        if not self._backlog:
            self._backlog = [
                (
                    key.fd,
                    (_IN if mask & selectors.EVENT_READ else 0)
                    | (_OUT if mask & selectors.EVENT_WRITE else 0),
                )
                for key, mask in self._selector.select(timeout)
            ]
        if maxevents <= 0:
            maxevents = len(self._backlog)
        ready, self._backlog = self._backlog[:maxevents], self._backlog[maxevents:]
        return ready

    def close(self) -> None:
        self._selector.close()


def _selector_events(eventmask: int) -> int:
    return (selectors.EVENT_READ if eventmask & _IN else 0) | (
        selectors.EVENT_WRITE if eventmask & _OUT else 0
    )


def _new_poller() -> _Poller:
    return _EPOLL() if _EPOLL is not None else _SelectorPoller()
