"""A run's pacing: the overall ``--rate`` and each host's pacer (``--host-rate``,
``--rate-limit-headers``), taken by the run's own starts and by a request the fetcher adds
(``--include soft404``'s canary), and told what a server's answer says it allows."""

from __future__ import annotations

import time
from dataclasses import replace

from afetch._clock import Clock
from afetch._record import Record
from afetch._settings import Settings
from afetch.attempt.outcome import ServerHints
from afetch.schedule.hosts import Host, HostTable, Pacer, host_key


class Pacing:
    """The pacers of one run. The run reads ``pacer`` (the overall rate; None: off) as it is."""

    def __init__(
        self, settings: Settings, hosts: HostTable | None, shared_host: Host, *, clock: Clock
    ) -> None:
        self.pacer = Pacer(rate=settings.rate) if settings.rate else None
        self._hosts = hosts
        self._shared_host = shared_host
        self._clock = clock
        #: The longest afetch waits on a server's word (as for Retry-After).
        self._max_wait = settings.max_retry_wait

    def take(self, host: Host, now: float) -> None:
        """A request of ``host`` starts at ``now``: its turn is taken."""
        if self.pacer is not None:
            self.pacer.take(now=now)
        if host.pacer is not None:
            host.pacer.take(now=now, in_flight=host.in_flight)

    def extra(self, url: str) -> float:
        """A request the fetcher adds of its own (--include soft404's canary) is counted by
        --rate and its host's pacing: the seconds until its turn (math.inf while a
        --rate-limit-headers probe is out). It needs no slot: its asker holds one."""
        now = self._clock.time()
        host = self._shared_host if self._hosts is None else self._hosts.get(host_key(url))
        turn = now
        for pacer in (self.pacer, host.pacer):
            if pacer is not None:
                turn = max(turn, pacer.next_at)
        self.take(host, now)
        return turn - now

    def heard(self, host: Host, record: Record, hints: ServerHints | None, epoch: int) -> None:
        """``--rate-limit-headers``: what the answer (to a request started in the pacer's window
        ``epoch``) said the host allows paces it."""
        from afetch.schedule.ratelimit import read_quota  # here: a plain run never reads one

        assert host.pacer is not None
        quota = None
        if hints is not None:
            headers = hints.headers
            if record.redirects and host_key(record.final_url or "") != host.key:
                headers = None  # another host's fields: they say nothing of this one
            # Unix time (wall clock): a reset may be given as one.
            quota = read_quota(headers, hints.retry_after, now=time.time())
            if quota is not None and quota.reset is not None and quota.reset > self._max_wait:
                quota = replace(quota, reset=self._max_wait)
        host.pacer.heard(quota, now=self._clock.time(), in_flight=host.in_flight, epoch=epoch)
