"""Run the afetch CLI with one way of resolving names, for bench/dns_scale.py.

Usage: python bench/dns_variant.py RESOLVER [afetch options...]

RESOLVER:

* ``cares``: afetch as it is: its engine looks names up with c-ares on the loop
  (afetch.engine.resolve) and hands the addresses to libcurl (CURLOPT_RESOLVE).
* ``threaded``: libcurl resolves each name itself, as afetch did before: its threaded resolver
  (libcurl 8.20 and later: a pool of at most 20 threads, getaddrinfo in each).
* ``getaddrinfo``: the old ``--no-private`` path: libcurl resolves nothing; each name is resolved
  by ``loop.getaddrinfo`` (the loop's default executor) and the checked address pinned with
  CURLOPT_CONNECT_TO.
* ``cares-pin``: ``--no-private`` as it is now: the same check and pinning, names resolved by
  the engine's c-ares resolver.

The ``--no-private`` variants get a policy that lets the lab's 127.x addresses through (every lab
name is on loopback).
"""

from __future__ import annotations

import ipaddress
import sys

import afetch._api
import afetch.cli.command
from afetch.engine.curl import engine as curl_engine
from afetch.engine.guard import AddressCheck, system_resolve

LAB = ipaddress.ip_network("127.0.0.0/8")


def lab_policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
    return address in LAB


def main() -> int:
    variant, argv = sys.argv[1], sys.argv[2:]
    if variant == "cares":
        return afetch.cli.command.main(argv)
    if variant == "threaded":
        curl_engine._resolves_names = lambda settings: False  # type: ignore[assignment]
        return afetch.cli.command.main(argv)
    if variant == "getaddrinfo":
        curl_engine._resolves_names = lambda settings: False  # type: ignore[assignment]

        def check() -> AddressCheck:
            return AddressCheck(policy=lab_policy, resolve=system_resolve)

    elif variant == "cares-pin":

        def check() -> AddressCheck:
            return AddressCheck(policy=lab_policy)  # the engine's resolver (afetch._api)

    else:
        sys.exit(f"dns_variant: unknown resolver {variant!r}")
    afetch._api.AddressCheck = check  # type: ignore[assignment,misc]
    return afetch.cli.command.main([*argv, "--no-private"])


if __name__ == "__main__":
    raise SystemExit(main())
