"""The lab's DNS server: UDP on ADDRESS:53 inside the lab's namespace, answering the plan's names.

Usage: python bench/lab_dns.py PLAN_JSON ADDRESS READY_FILE [STATS_SOCKET]

Each answer is sent after the name's DNS latency (the plan's, drawn once per name). For a lossy
name the first query of each type is not answered, so the client's resolver times out and asks
again. A → the name's 127.x address; AAAA and other types of a known name → no data (NOERROR);
unknown names → NXDOMAIN. TTL 300 s. A connection to the Unix socket STATS_SOCKET gets a JSON
line of counters (queries received, A and AAAA among them, queries dropped), so the bench can
tell how many lookups a client made. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from lab_plan import read

TTL = 300


class Resolver(asyncio.DatagramProtocol):
    def __init__(self, plan: Path) -> None:
        _, hosts = read(plan)
        self.hosts = {host.name: host for host in hosts}
        self.dropped: set[tuple[str, int]] = set()
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()
        self.counters = {"dns_queries": 0, "dns_a": 0, "dns_aaaa": 0, "dns_dropped": 0}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = DNSRecord.parse(data)
        except Exception:  # a malformed packet: ignore it, as a server would
            return
        qname = str(query.q.qname).rstrip(".").lower()
        qtype = query.q.qtype
        counters = self.counters
        counters["dns_queries"] += 1
        if qtype == QTYPE.A:
            counters["dns_a"] += 1
        elif qtype == QTYPE.AAAA:
            counters["dns_aaaa"] += 1
        reply = query.reply()
        host = self.hosts.get(qname)
        delay = 0.0
        if host is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            if host.dns_lossy and (qname, qtype) not in self.dropped:
                self.dropped.add((qname, qtype))
                counters["dns_dropped"] += 1
                return
            delay = host.dns_s
            if qtype == QTYPE.A:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(host.address), ttl=TTL))
        self.loop.call_later(delay, self._send, reply.pack(), addr)

    def _send(self, packet: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(packet, addr)


async def main(plan: str, address: str, ready: str, stats: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    transport, resolver = await loop.create_datagram_endpoint(
        lambda: Resolver(Path(plan)), local_addr=(address, 53)
    )
    # A burst of thousands of queries (c-ares at -c 5000) must not overflow the default ~200 KB
    # receive buffer: the lab would drop queries a real resolver answers. Root: FORCE.
    sock = transport.get_extra_info("socket")
    for option in (33, 32):  # Linux's SO_RCVBUFFORCE, SO_SNDBUFFORCE (not in Python's socket)
        sock.setsockopt(socket.SOL_SOCKET, option, 32 * 1024 * 1024)
    control = None
    if stats is not None:

        async def report(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(json.dumps(resolver.counters).encode() + b"\n")
            await writer.drain()
            writer.close()

        control = await asyncio.start_unix_server(report, path=stats)
    Path(ready).write_text("ready\n")
    try:
        await stop
    finally:
        transport.close()
        if control is not None:
            control.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # the bench extra brings it; the plain loop serves too, more slowly
        asyncio.run(main(*sys.argv[1:5]))
    else:
        uvloop.run(main(*sys.argv[1:5]))
