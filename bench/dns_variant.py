"""Run the afetch CLI with one way of resolving names, for bench/dns_scale.py.

Usage: python bench/dns_variant.py RESOLVER [afetch options...]

RESOLVER:

* ``threaded``: afetch as it is: libcurl resolves each name itself with its threaded resolver
  (libcurl 8.20 and later: a pool of at most 20 threads, getaddrinfo in each).
* ``getaddrinfo``: the ``--no-private`` path: each name resolved by ``loop.getaddrinfo`` (the
  loop's default executor: a few threads) and the checked address pinned with
  CURLOPT_CONNECT_TO, so libcurl resolves nothing.
* ``cares``: the same path, names resolved by c-ares on the loop (bench/dns_cares.py).

The ``--no-private`` variants get a policy that lets the lab's 127.x addresses through (every lab
name is on loopback), so what differs between them is the resolver alone.
"""

from __future__ import annotations

import ipaddress
import sys

import afetch._api
import afetch.cli.command
from afetch.engine.guard import AddressCheck, system_resolve

LAB = ipaddress.ip_network("127.0.0.0/8")


def lab_policy(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
    return address in LAB


def main() -> int:
    variant, argv = sys.argv[1], sys.argv[2:]
    if variant == "threaded":
        return afetch.cli.command.main(argv)
    if variant == "getaddrinfo":

        def check() -> AddressCheck:
            return AddressCheck(policy=lab_policy, resolve=system_resolve)

    elif variant == "cares":
        from dns_cares import Resolver

        def check() -> AddressCheck:
            return AddressCheck(policy=lab_policy, resolve=Resolver().resolve)  # on the run's loop

    else:
        sys.exit(f"dns_variant: unknown resolver {variant!r}")
    afetch._api.AddressCheck = check  # type: ignore[assignment,misc]
    return afetch.cli.command.main([*argv, "--no-private"])


if __name__ == "__main__":
    raise SystemExit(main())
