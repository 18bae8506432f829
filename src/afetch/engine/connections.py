"""How many connections an engine keeps open, idle ones included, within the open-files limit.

A pool no larger than ``-c`` keeps no idle connection for long: every new connection, to
whatever host, closes the one idle connection there is room for, so a list that comes back to
a host a few URLs later opens a new connection (and a full TLS handshake) for it. In the
internet-like lab afetch opened 1,944 connections for 1,980 URLs, curl --parallel 927.
libcurl's own default pool is four connections per easy handle, which curl --parallel gets:
afetch keeps ``4 × -c`` too, ``-c`` in use and the rest idle, oldest closed first.

Idle connections are descriptors. run/fdlimit.py raises the soft limit for what the requests
need (and for the idle connections, when the hard limit allows); the idle ones get only what is
left once every request in flight has what it may hold, so they never push a request into
"Too many open files".
"""

from __future__ import annotations

import os

from afetch._settings import Settings

try:
    import resource
except ImportError:  # Windows: no rlimits
    resource = None  # type: ignore[assignment]

#: Open connections per request slot, idle ones included (libcurl's default for a multi handle).
PER_SLOT = 4
#: Idle connections at most, whatever -c. An idle TLS connection holds ~90 KB resident (libcurl
#: 8.23 with OpenSSL 3.6, the pycurl wheel: 137 KB allocated, OpenSSL's 62 KB read and 16 KB
#: write buffers kept for the connection's life; bench/results/c10k.md), so a -c 10000 run
#: keeps at most ~175 MiB of them rather than 2.6 GiB.
IDLE_MAX = 2000
#: Descriptors assumed open besides the requests where they cannot be counted (no /proc).
_UNCOUNTED = 64


def per_request(*, save: bool, cache: bool) -> int:
    """Descriptors one request in flight can hold: its socket and one more while it connects
    (libcurl's threaded resolver wakes the transfer through a socket pair, and happy eyeballs
    may race a second socket for the other address family); with ``--save-dir`` the body's
    file and its host folder, held while the body streams; with ``--cache`` the cache entry
    being read or written.

    >>> per_request(save=True, cache=False)
    4
    """
    return 2 + (2 if save else 0) + (1 if cache else 0)


def idle_wanted(concurrency: int) -> int:
    """Idle connections a run of ``concurrency`` requests keeps open at most.

    >>> idle_wanted(100), idle_wanted(10_000)
    (300, 2000)
    """
    return min((PER_SLOT - 1) * concurrency, IDLE_MAX)


def settings_per_request(settings: Settings) -> int:
    """Descriptors one request of a run with ``settings`` can hold."""
    return per_request(save=settings.save_dir is not None, cache=settings.cache_dir is not None)


def pool_size(concurrency: int, *, per_request: int) -> int:
    """Connections to keep open: ``PER_SLOT × concurrency`` at most (``IDLE_MAX`` idle at
    most), never less than ``concurrency``; the idle ones within the descriptors the open-files
    limit leaves once each request in flight holds ``per_request`` (its socket, a resolver's or
    second address family's socket while it connects, a saved body's file...).

    >>> pool_size(10, per_request=2) <= 40
    True
    """
    wanted = concurrency + idle_wanted(concurrency)
    if resource is None:
        return wanted
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return wanted
    return fitting(concurrency, soft=soft, open_now=_open_descriptors(), per_request=per_request)


def fitting(concurrency: int, *, soft: int, open_now: int, per_request: int) -> int:
    """The pool for ``concurrency`` requests under a soft limit of ``soft`` descriptors with
    ``open_now`` open already.

    >>> fitting(100, soft=65536, open_now=20, per_request=2)
    400
    >>> fitting(10_000, soft=1_048_576, open_now=20, per_request=2)  # IDLE_MAX idle at most
    12000
    >>> fitting(100, soft=300, open_now=20, per_request=2)  # 80 spare: 80 idle
    180
    >>> fitting(100, soft=243, open_now=43, per_request=2)  # just enough for the requests
    100
    """
    spare = soft - open_now - per_request * concurrency
    return concurrency + max(0, min(idle_wanted(concurrency), spare))


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return _UNCOUNTED
