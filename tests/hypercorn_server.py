"""A real TLS server for the tests: hypercorn on 127.0.0.1, optionally with QUIC (HTTP/3)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _free_port() -> int:
    # A port free for both TCP and UDP (hypercorn binds both to it).
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
        if _udp_free(port):
            return port


def _udp_free(port: int) -> bool:
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def text_app(
    scope: dict, receive: object, send: object, *, bodies: dict[str, bytes] | None = None
) -> None:
    """An ASGI app answering 200 text/plain: ``bodies[path]`` if given, else the HTTP version
    the request came over ("1.1", "2", "3")."""
    if scope["type"] != "http":
        return
    body = (bodies or {}).get(scope["path"]) or scope["http_version"].encode()
    await send(  # type: ignore[operator]
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@contextlib.contextmanager
def tls_hypercorn(app: Any, folder: Path, *, quic: bool = False) -> Iterator[tuple[str, Path]]:
    """hypercorn serving ``app`` on 127.0.0.1 with a trustme certificate for 127.0.0.1 and
    h3.test (h2 and http/1.1 over ALPN; also HTTP/3 on the same port number with ``quic``).
    Yields the base URL (no trailing slash) and the CA file."""
    import trustme
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    ca = trustme.CA()
    ca_path = folder / "ca.pem"
    key_path = folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ca.issue_cert("127.0.0.1", "h3.test").private_key_and_cert_chain_pem.write_to_path(
        str(key_path)
    )
    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    if quic:
        config.quic_bind = [f"127.0.0.1:{port}"]
    config.certfile = config.keyfile = str(key_path)
    config.accesslog = config.errorlog = None
    # Stopped at the end of a module: a connection still open (a proxy's tunnel) held the
    # shutdown for hypercorn's default 3 s grace.
    config.graceful_timeout = 0.1
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(
            serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        ),
        daemon=True,
    )
    thread.start()
    context = ssl.create_default_context(cafile=str(ca_path))
    for _ in range(100):  # TCP up, and the UDP port taken (QUIC bound) when asked for
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            if not quic or not _udp_free(port):
                break
        threading.Event().wait(0.05)
    try:
        yield f"https://127.0.0.1:{port}", ca_path
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
