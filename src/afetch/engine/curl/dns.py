"""Names on libcurl's side: its DNS cache, swept once a second, and the addresses of hosts looked
up ahead (afetch.engine.names) put into it."""

from __future__ import annotations

from typing import Protocol

import pycurl

from afetch.engine.names import Answer

#: libcurl's DNS cache: entries live DNS_CACHE_S (libcurl's default), swept once a
#: DNS_SWEEP_S at most. Every handle keeps entries forever (setup.new_handle), so that libcurl
#: does not walk the whole cache after each transfer; one transfer a second carries the
#: timeout, and the walk, for all (libcurl prunes by the timeout of the transfer ending).
DNS_CACHE_S = 60
DNS_SWEEP_S = 1.0


class _Slot(Protocol):
    """What of a transfer (transfer._Transfer) the cache sets."""

    curl: pycurl.Curl
    sweeps_dns: bool
    resolves: bool


def resolve_line(host: str, port: int, addresses: list[str]) -> str:
    """A ``CURLOPT_RESOLVE`` line whose entry expires as libcurl's own do (the ``+``).

    >>> resolve_line("a.test", 443, ["192.0.2.1", "2001:db8::1"])
    '+a.test:443:192.0.2.1,[2001:db8::1]'
    """
    listed = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    return f"+{host}:{port}:{listed}"


class DnsCache:
    """The options of libcurl's DNS cache on each transfer of one engine."""

    __slots__ = ("sweep_at",)

    def __init__(self) -> None:
        #: When the next transfer sweeps; the first does (an empty cache: nothing to walk).
        self.sweep_at = 0.0

    def set(self, slot: _Slot, now: float, answer: Answer | None) -> None:
        """Set ``slot``'s transfer, starting at ``now``: whether it sweeps the cache, and
        ``answer``'s addresses (its host's, looked up ahead) for the cache."""
        curl = slot.curl
        if now >= self.sweep_at:
            self.sweep_at = now + DNS_SWEEP_S
            curl.setopt(pycurl.DNS_CACHE_TIMEOUT, DNS_CACHE_S)
            slot.sweeps_dns = True
        elif slot.sweeps_dns:
            curl.setopt(pycurl.DNS_CACHE_TIMEOUT, -1)
            slot.sweeps_dns = False
        if answer is not None:  # for this transfer and the host's next ones
            curl.setopt(pycurl.RESOLVE, [resolve_line(*answer)])
            slot.resolves = True
        elif slot.resolves:  # or libcurl would load the line again on this transfer
            curl.setopt(pycurl.RESOLVE, [])
            slot.resolves = False
