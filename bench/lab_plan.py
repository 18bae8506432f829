"""The internet-like lab's plan: names, what each one is, the URL list and the ideal time.

Everything random is drawn here, once, from one seed, and written to ``plan.json``; the DNS
server (bench/lab_dns.py) and the HTTPS servers (bench/lab_server.py) only read it, so the
ideal time below is computed from the very latencies the servers apply.

A name ``hNNNNN.afetch-lab.test`` is one of:

* ``ok``: answers every request after its own latency, drawn once per host from a lognormal
  (default median 80 ms, p99 2 s, capped at 10 s): time to the response's first byte;
* ``dead``: its address's SYNs are dropped (nft in the lab's namespace), so a client waits for
  its connect timeout;
* ``drip``: answers after its latency, then sends the 1 KB body in 16 pieces over ``drip_s``.

Each name also has a DNS latency (lognormal, default median 20 ms, p99 ten times that) and,
for a ``dns_loss`` share of names, the first query of each type is dropped, so the client's
resolver must time out and retry (glibc: ``options timeout:`` in the namespace's resolv.conf).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

DOMAIN = "afetch-lab.test"  # .test is reserved (RFC 2606): never a real name
LIVE_NET = 10  # live and drip hosts: 127.10.0.0/16
DEAD_NET = 20  # dead hosts: 127.20.0.0/16, SYNs dropped
MAX_NAMES = 65_000
Z99 = 2.3263  # the standard normal's 99th percentile
LATENCY_CAP_S = 10.0
BODY_BYTES = 1024
DRIP_PIECES = 16


@dataclass(frozen=True)
class LabSettings:
    names: int = 10_000
    urls: int = 50_000
    seed: int = 22
    latency_p50_ms: float = 80.0
    latency_p99_ms: float = 2000.0
    dead_share: float = 0.01
    drip_share: float = 0.005
    drip_s: float = 10.0
    dns_p50_ms: float = 20.0
    dns_loss: float = 0.005
    resolver_timeout_s: int = 2  # glibc "options timeout:" in the namespace's resolv.conf
    connect_timeout_s: float = 10.0  # given to every client alike
    max_time_s: float = 30.0  # whole-request deadline given to every client alike


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    kind: str  # ok | dead | drip
    latency_s: float
    dns_s: float
    dns_lossy: bool


def _lognormal(rng: random.Random, p50_s: float, p99_s: float, cap_s: float) -> float:
    if p50_s <= 0:  # no latency at all
        return 0.0
    sigma = math.log(p99_s / p50_s) / Z99
    return min(cap_s, rng.lognormvariate(math.log(p50_s), sigma))


def address(index: int, kind: str) -> str:
    net = DEAD_NET if kind == "dead" else LIVE_NET
    return f"127.{net}.{index // 256}.{index % 256}"


def draw(settings: LabSettings) -> tuple[list[Host], list[str]]:
    """The hosts and the URL list (each name gets urls/names URLs, all shuffled)."""
    if not 1 <= settings.names <= MAX_NAMES:
        raise ValueError(f"names must be 1..{MAX_NAMES}")
    # One stream per quantity, so that changing one setting (say the DNS latency) leaves the
    # other draws as they were: the same hosts are dead, slow or lossy, with the same latencies.
    kinds, latencies, lookups, losses, order = (
        random.Random(f"{settings.seed}:{what}")
        for what in ("kind", "latency", "dns", "loss", "order")
    )
    hosts = []
    for index in range(settings.names):
        roll = kinds.random()
        kind = (
            "dead"
            if roll < settings.dead_share
            else "drip"
            if roll < settings.dead_share + settings.drip_share
            else "ok"
        )
        latency = _lognormal(
            latencies, settings.latency_p50_ms / 1000, settings.latency_p99_ms / 1000, LATENCY_CAP_S
        )
        dns = _lognormal(lookups, settings.dns_p50_ms / 1000, settings.dns_p50_ms / 100, 2.0)
        lossy = losses.random() < settings.dns_loss
        name = f"h{index:05d}.{DOMAIN}"
        hosts.append(Host(name, address(index, kind), kind, latency, dns, lossy))
    urls = [
        f"https://{hosts[i % settings.names].name}/p{i // settings.names}?n={i}"
        for i in range(settings.urls)
    ]
    order.shuffle(urls)
    return hosts, urls


def url_seconds(settings: LabSettings, host: Host, *, first_on_name: bool) -> float:
    """How long an ideal client with the given timeouts spends on one URL of ``host``: the name
    looked up once (its first URL pays the DNS latency, plus one resolver timeout if lossy),
    connections free, then the server's latency (and the drip) or the connect timeout."""
    dns = 0.0
    if first_on_name:
        dns = host.dns_s + (settings.resolver_timeout_s if host.dns_lossy else 0.0)
    if host.kind == "dead":
        return dns + settings.connect_timeout_s
    if host.kind == "drip":
        return dns + min(settings.max_time_s, host.latency_s + settings.drip_s)
    return dns + min(settings.max_time_s, host.latency_s)


def ideal_seconds(
    settings: LabSettings, hosts: list[Host], urls: list[str], concurrency: int
) -> tuple[float, float]:
    """(list schedule, lower bound): the URLs started in file order on ``concurrency`` slots,
    each as soon as a slot frees; and max(total work / slots, longest URL)."""
    by_name = {host.name: host for host in hosts}
    seen: set[str] = set()
    slots = [0.0] * concurrency
    total = longest = end = 0.0
    for url in urls:
        name = url.split("/", 3)[2]
        cost = url_seconds(settings, by_name[name], first_on_name=name not in seen)
        seen.add(name)
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + cost)
        end = max(end, start + cost)
        total += cost
        longest = max(longest, cost)
    return end, max(total / concurrency, longest)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(settings: LabSettings, hosts: list[Host], urls: list[str]) -> dict[str, object]:
    live = [h.latency_s for h in hosts if h.kind != "dead"]
    kinds = {kind: sum(h.kind == kind for h in hosts) for kind in ("ok", "dead", "drip")}
    names = {url.split("/", 3)[2] for url in urls}
    by_name = {h.name: h for h in hosts}
    servable = sum(by_name[url.split("/", 3)[2]].kind != "dead" for url in urls)
    return {
        "names": len(names),
        "urls": len(urls),
        "kinds": kinds,
        "servable_urls": servable,
        "latency_p50_ms": quantile(live, 0.5) * 1000,
        "latency_p90_ms": quantile(live, 0.9) * 1000,
        "latency_p99_ms": quantile(live, 0.99) * 1000,
        "latency_mean_ms": sum(live) / len(live) * 1000,
        "dns_lossy_names": sum(h.dns_lossy for h in hosts),
    }


def write(path: Path, settings: LabSettings, hosts: list[Host]) -> None:
    path.write_text(json.dumps({"settings": asdict(settings), "hosts": [asdict(h) for h in hosts]}))


def read(path: Path) -> tuple[LabSettings, list[Host]]:
    data = json.loads(path.read_text())
    return LabSettings(**data["settings"]), [Host(**h) for h in data["hosts"]]
