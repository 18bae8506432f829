"""The internet-like lab: a network namespace of its own with a DNS server, HTTPS servers for
10,000+ names on 127.x addresses, dead hosts and slow-drip hosts; clients run inside it.

    with Lab(settings, workdir) as lab:
        lab.wrap(["curl", ...])       # -> ["ip", "netns", "exec", NAME, "curl", ...]

Setup (root): ``ip netns add afetch-lab-PID``, loopback up (the whole of 127.0.0.0/8 is local
on it, and nothing else exists in the namespace, so no packet can leave the machine), an nft
rule dropping SYNs to the dead hosts' 127.20.0.0/16, and /etc/netns/NAME/resolv.conf naming
the lab's DNS server, which ``ip netns exec`` mounts over /etc/resolv.conf for every process
it starts: curl, wget2, libcurl's threaded resolver and Python's getaddrinfo all ask the lab.
One private CA (trustme) signs a wildcard certificate for ``*.afetch-lab.test``; clients get the
CA file (``ca.pem``) and every name is verified with SNI. Everything is removed on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import lab_plan
from lab_plan import DOMAIN, LabSettings

HERE = Path(__file__).resolve().parent
DNS_ADDRESS = "127.0.0.53"
NEEDS = "ip (iproute2), nft (nftables); Python packages dnslib, trustme (the bench extra)"
INSTALL_HINT = (
    "apt-get install -y iproute2 nftables wget2 && python -m pip install -e '.[bench]'"
    " (and run as root: the lab makes a network namespace)"
)
NFT_RULES = f"""\
table inet afetchlab {{
    chain input {{
        type filter hook input priority 0; policy accept;
        ip daddr 127.{lab_plan.DEAD_NET}.0.0/16 tcp flags & (syn | ack) == syn drop
    }}
}}
"""


def missing() -> list[str]:
    """What the lab needs and this machine lacks (empty: all there)."""
    lacks = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    for module in ("dnslib", "trustme"):
        try:
            __import__(module)
        except ImportError:
            lacks.append(f"python module {module}")
    if os.geteuid() != 0:
        lacks.append("root (for ip netns add)")
    return lacks


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA, server certificate chain, key), made once per directory and reused after."""
    ca_pem, cert_pem, key_pem = (directory / n for n in ("ca.pem", "server.pem", "server.key"))
    if not (ca_pem.exists() and cert_pem.exists() and key_pem.exists()):
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert(f"*.{DOMAIN}", DOMAIN)
        ca.cert_pem.write_to_path(str(ca_pem))
        cert.private_key_pem.write_to_path(str(key_pem))
        cert_pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return ca_pem, cert_pem, key_pem


def remove_stale_namespaces() -> None:
    """Delete the namespaces of earlier labs whose bench process is gone (killed with SIGKILL:
    no __exit__ ran). Only names of this bench's form are touched."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        prefix, _, pid = name.rpartition("-")
        if prefix == "afetch-lab" and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", name], check=False)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


class Lab:
    def __init__(self, settings: LabSettings, workdir: Path, *, servers: int | None = None) -> None:
        lacks = missing()
        if lacks:
            sys.exit(f"bench: the internet lab needs {', '.join(lacks)}; {INSTALL_HINT}")
        self.settings = settings
        self.dir = workdir / "lab"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.namespace = f"afetch-lab-{os.getpid()}"
        self.etc = Path("/etc/netns") / self.namespace
        self.servers = servers or os.cpu_count() or 1
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stats_sockets: list[Path] = []
        self.hosts, self.urls = lab_plan.draw(settings)
        self.plan = self.dir / "plan.json"
        lab_plan.write(self.plan, settings, self.hosts)
        self.ca, self.cert, self.key = write_certificates(self.dir)

    def afetch_flags(self) -> list[str]:
        """What every afetch run in the lab is given, as every other client: no retries, the
        lab's connect timeout and request deadline, and its CA."""
        settings = self.settings
        return [
            "--retries",
            "0",
            "--connect-timeout",
            str(settings.connect_timeout_s),
            "--timeout",
            str(settings.max_time_s),
            "--cacert",
            str(self.ca),
        ]

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the lab (``ip netns exec`` execs it: wait4 still sees the tool)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def __enter__(self) -> Lab:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        remove_stale_namespaces()
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        subprocess.run(["ip", "-n", self.namespace, "link", "set", "lo", "up"], check=True)
        subprocess.run(self.wrap(["nft", "-f", "-"]), input=NFT_RULES.encode(), check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(
            f"nameserver {DNS_ADDRESS}\n"
            f"options timeout:{self.settings.resolver_timeout_s} attempts:2\n"
        )
        (self.etc / "hosts").write_text("127.0.0.1 localhost\n")
        ready = [self.dir / "dns.ready"]
        for stale in self.dir.glob("*.ready"):  # a workdir used before: wait for these servers
            stale.unlink()
        dns_stats = self.dir / "dns.sock"
        self.stats_sockets.append(dns_stats)
        self._spawn([HERE / "lab_dns.py", self.plan, DNS_ADDRESS, ready[0], dns_stats])
        for index in range(self.servers):
            stats = self.dir / f"server{index}.sock"
            ready.append(self.dir / f"server{index}.ready")
            self.stats_sockets.append(stats)
            self._spawn([HERE / "lab_server.py", self.plan, self.cert, self.key, stats, ready[-1]])
        deadline = time.monotonic() + 30
        while not all(path.exists() for path in ready):
            if any(p.poll() is not None for p in self.processes) or time.monotonic() > deadline:
                raise RuntimeError("bench: the lab's servers did not start (messages above)")
            time.sleep(0.05)
        self._check()

    def _spawn(self, argv: Sequence[object]) -> None:
        command = self.wrap([sys.executable, *(str(a) for a in argv)])
        self.processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))

    def _check(self) -> None:
        """One name looked up through the namespace's resolv.conf, over verified TLS."""
        live = next(h for h in self.hosts if h.kind == "ok")
        probe = (
            "import ssl, socket, sys; name = sys.argv[1]; ctx = ssl.create_default_context("
            "cafile=sys.argv[2]); s = ctx.wrap_socket(socket.create_connection((name, 443),"
            " timeout=20), server_hostname=name); s.sendall(b'GET / HTTP/1.1\\r\\nHost: '"
            " + name.encode() + b'\\r\\nConnection: close\\r\\n\\r\\n'); print(s.recv(64))"
        )
        done = subprocess.run(
            self.wrap([sys.executable, "-c", probe, live.name, str(self.ca)]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if "200 OK" not in done.stdout:
            raise RuntimeError(f"bench: the lab does not answer: {done.stderr.strip()[-300:]}")

    def counters(self) -> dict[str, int]:
        """The servers' counters, summed (connections, requests, whole responses), and the DNS
        server's (queries: dns_queries, dns_a, dns_aaaa, dns_dropped)."""
        total: dict[str, int] = {}
        for path in self.stats_sockets:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(path))
                data = b""
                while chunk := sock.recv(4096):
                    data += chunk
            for key, value in json.loads(data).items():
                total[key] = total.get(key, 0) + value
        return total

    def server_cpu(self) -> float:
        """User + system seconds the lab's processes have used so far (/proc/PID/stat)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for process in self.processes:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(
            ["ip", "netns", "del", self.namespace], check=False, stderr=subprocess.DEVNULL
        )
        shutil.rmtree(self.etc, ignore_errors=True)
