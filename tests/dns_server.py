"""A DNS server on loopback for the resolver's tests (afetch.engine.resolve): UDP on 127.0.0.1,
answers decided per query by the test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import dnslib

#: What the server does with a query for a name: (addresses, ttl, delay), or None to drop it,
#: or "nxdomain".
Answer = tuple[list[str], int, float] | str | None


class DnsServer:
    """A UDP DNS server on 127.0.0.1 answering from ``answer(name, call)``; counts A queries
    per name (``calls``)."""

    def __init__(self, answer: Callable[[str, int], Answer]) -> None:
        self.answer = answer
        self.calls: dict[str, int] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dnslib.DNSRecord.parse(data)
            name = str(query.q.qname).rstrip(".")
            reply = query.reply()
            if query.q.qtype != dnslib.QTYPE.A:  # AAAA: no data
                self.sock.sendto(reply.pack(), peer)
                continue
            call = self.calls[name] = self.calls.get(name, 0) + 1
            answer = self.answer(name, call)
            if answer is None:
                continue
            if answer == "nxdomain":
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
                self.sock.sendto(reply.pack(), peer)
                continue
            addresses, ttl, delay = answer  # type: ignore[misc]
            for address in addresses:
                reply.add_answer(dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A(address), ttl=ttl))
            packet = reply.pack()
            if delay:
                threading.Timer(delay, self.sock.sendto, (packet, peer)).start()
            else:
                self.sock.sendto(packet, peer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
