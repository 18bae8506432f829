"""The default engine: libcurl (through pycurl) on the asyncio event loop.

``engine`` (:class:`CurlEngine`: transfers started, released, closed), ``driver`` (libcurl's
socket and timer callbacks on the loop), ``poller`` (the sockets' epoll), ``transfer`` (one easy
handle and its transfer), ``setup`` (an easy handle's options, request headers, the TLS probe),
``head`` (the response head's lines), ``response``, ``errors`` (result codes as afetch's errors).
"""

from afetch.engine.curl.engine import CurlEngine
from afetch.engine.curl.errors import BadHeader, CurlError

__all__ = ["BadHeader", "CurlEngine", "CurlError"]
