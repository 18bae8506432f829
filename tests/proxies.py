"""A real HTTP + SOCKS proxy on 127.0.0.1 for the tests: pproxy, served from a thread.

pproxy speaks HTTP (forwarding and CONNECT), SOCKS4 and SOCKS5 on one port, with optional
``user:password`` authentication; every connection it makes is reported to ``verbose``, which
this wrapper keeps in :attr:`ProxyServer.log` (``"http 127.0.0.1:PEER -> HOST:PORT"``,
``"socks5 ... -> HOST:PORT"``): the proof that a request went through the proxy, which protocol
it used, and which host the proxy was told to reach (a name, or the address afetch checked).

It runs in-process on a plain asyncio loop of its own: pproxy's command line installs uvloop
when it is importable and then fails on current uvloop releases.
"""

from __future__ import annotations

import asyncio
import threading


class ProxyServer:
    """``with ProxyServer() as proxy: proxy.url("socks5h")`` → ``socks5h://127.0.0.1:PORT``."""

    def __init__(self, *, auth: str | None = None) -> None:
        #: "user:password" the proxy demands (HTTP 407 or a SOCKS refusal without it).
        self.auth = auth
        self.port = 0
        self.log: list[str] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def url(self, scheme: str = "http", *, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}127.0.0.1:{self.port}"

    def connections(self, since: int = 0) -> list[str]:
        """Where the proxy connected to ("HOST:PORT"), oldest first, from log line ``since``."""
        found = []
        for line in self.log[since:]:
            _, arrow, target = line.partition(" -> ")
            if arrow:
                found.append(target)
        return found

    def __enter__(self) -> ProxyServer:
        self._thread = threading.Thread(target=self._run, name="pproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"proxy did not start: {self._failure!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        import pproxy

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        uri = "http+socks4+socks5://127.0.0.1:0" + (f"#{self.auth}" if self.auth else "")
        # authtime 0: pproxy would otherwise let an address that once authenticated in
        # without credentials for 30 days (in a table shared by every server in the process).
        args = {"rserver": [], "verbose": self.log.append, "authtime": 0}
        server = await pproxy.Server(uri).start_server(args)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
