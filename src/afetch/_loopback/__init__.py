"""A small HTTP/1.1 server on 127.0.0.1 that misbehaves on request, for ``afetch --demo`` and
the tests: the server (``server``), its routes (``routes``, listed in its docstring), and the
HTTP it writes (``wire``)."""

from afetch._loopback.server import LoopbackServer
from afetch._loopback.stats import ServerStats

__all__ = ["LoopbackServer", "ServerStats"]
