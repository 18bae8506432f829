"""``--include`` in an attempt: what a run's keys need, and building them for each record.

Nothing here runs unless ``--include`` names a key: the fetcher makes no :class:`IncludePlan`
and keeps no body for a run without it, so the default record and its cost are unchanged. The
keys themselves, what each is built from and how, are the table :data:`afetch._include.INCLUDE`;
what an engine knows about a transfer (timings, address, TLS) arrives as an
:class:`afetch.engine.base.TransferInfo`, and the body's keys are computed from the first
``body_limit`` bytes of the decoded body.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from afetch._include import Body, IncludeKey, Verdict, included
from afetch.engine.base import Collect, TransferInfo


class IncludePlan:
    """What the ``--include`` names of a run need from each attempt, from the table: the
    final head's ``headers``, the engine's transfer ``info``, the kept ``body``."""

    __slots__ = (
        *("_body_build", "_body_defaults", "_build", "body", "body_limit", "headers", "info"),
        *("canary", "keys", "names", "tls"),
    )

    def __init__(self, names: Collection[str], *, body_limit: int) -> None:
        self.names = tuple(names)
        #: The keys these names turn on, in record order.
        self.keys: tuple[IncludeKey, ...] = included(self.names)
        sources = {key.source for key in self.keys}
        self.headers = "head" in sources
        self.tls = "tls" in sources
        self.info = self.tls or "transfer" in sources
        #: --include soft404: a 200's body is compared with its host's canary's.
        self.canary = "canary" in sources
        self.body = "body" in sources or self.canary
        self.body_limit = body_limit
        self._build = _compile_build(self.keys)
        body_keys = [key for key in self.keys if key.source == "body"]
        self._body_build = _compile_body_build(body_keys)
        self._body_defaults = {key.name: key.default for key in body_keys}

    def keeper(self) -> BodyKeeper:
        return BodyKeeper(self.body_limit)

    def collect(self) -> Collect:
        """What the engine must collect about each transfer for these keys."""
        return Collect(transfer=self.info, tls=self.tls)


def engine_collect(names: Collection[str]) -> Collect:
    """What the engine of a run with these ``--include`` names must collect (nothing without)."""
    if not names:
        return Collect()
    return IncludePlan(names, body_limit=0).collect()


class BodyKeeper:
    """Keeps the first ``limit`` bytes of a body; what comes after is only noticed.

    >>> keeper = BodyKeeper(4)
    >>> keeper.add(b"abc"); keeper.add(b"def")
    >>> keeper.data(), keeper.truncated
    (b'abcd', True)
    """

    __slots__ = ("_parts", "limit", "size", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.truncated = False
        self._parts: list[bytes] = []

    def add(self, piece: bytes) -> None:
        room = self.limit - self.size
        if len(piece) > room:
            if not piece:
                return
            self.truncated = True
            if room <= 0:
                return
            piece = piece[:room]
        self._parts.append(piece)
        self.size += len(piece)

    def data(self) -> bytes:
        return b"".join(self._parts)


_new_tuple = tuple.__new__


def build_included(
    plan: IncludePlan,
    *,
    headers: Iterable[tuple[str, str]] | None,
    content_type: str | None,
    info: TransferInfo | None,
    kept: BodyKeeper | None,
    derived: dict[str, Any] | None = None,
    verdict: Verdict | None = None,
) -> dict[str, Any]:
    """The included keys of one record, in record order (their default for what is unknown).

    ``derived``: the body's keys as :func:`derive` computed them (off the loop for a large
    body); computed here when not given. ``verdict``: the canary's (``--include soft404``)."""
    if plan.body and derived is None:
        derived = body_keys(plan, kept, content_type)
    return plan._build(headers, info, derived, verdict)


def _compile_build(keys: Iterable[IncludeKey]) -> Callable[..., dict[str, Any]]:
    """``(headers, info, derived, verdict) -> {"headers": ..., ...}``: the keys' values in record
    order, each its default when its source is missing, the body's taken from ``derived``.

    Generated once per run from the table, as :mod:`afetch._record` generates its writers: a
    dict display costs what the hand-written ifs per key did, a loop over the keys more.
    """
    namespace: dict[str, Any] = {}
    items = []
    for index, key in enumerate(keys):
        if key.source == "body":
            value = f"d[{key.name!r}]"
        else:
            given = {"head": "h", "canary": "c"}.get(key.source, "i")
            namespace[f"b{index}"], namespace[f"z{index}"] = key.build, key.default
            value = f"z{index} if {given} is None else b{index}({given})"
        items.append(f"{key.name!r}: {value}")
    return _dict_display("h, i, d, c", items, namespace)


def _compile_body_build(keys: Iterable[IncludeKey]) -> Callable[[Body], dict[str, Any]]:
    """``body -> {"body": ..., ...}``: the body's keys, as :func:`_compile_build` does."""
    namespace: dict[str, Any] = {}
    items = []
    for index, key in enumerate(keys):
        namespace[f"b{index}"] = key.build
        items.append(f"{key.name!r}: b{index}(b)")
    return _dict_display("b", items, namespace)


def _dict_display(arguments: str, items: list[str], namespace: dict[str, Any]) -> Any:
    # eval of text built from the table's names and fixed text, never of anything from outside.
    return eval(f"lambda {arguments}: {{{', '.join(items)}}}", namespace)


#: A kept body up to this size has its keys computed on the loop (a thread hop would cost
#: more); a larger one in a worker thread. Every step is linear, but a MiB of entities or JSON
#: numbers still costs 100 ms or more of Python: never on the loop, where it would hold up
#: every other transfer and the signal handlers.
ON_LOOP_MAX = 64 * 1024


async def derive(
    plan: IncludePlan, kept: BodyKeeper | None, content_type: str | None
) -> dict[str, Any] | None:
    """The body's keys of a record (see :func:`body_keys`), off the loop when the body is large."""
    if not plan.body:
        return None
    if kept is None or kept.size <= ON_LOOP_MAX:
        return body_keys(plan, kept, content_type)
    import asyncio

    return await asyncio.to_thread(body_keys, plan, kept, content_type)


def body_keys(
    plan: IncludePlan, kept: BodyKeeper | None, content_type: str | None
) -> dict[str, Any]:
    """The plan's keys built from the body (``body``, ``body_truncated``, ``json``, ``title``):
    each linear in the kept body's size, which ``--body-limit`` bounds."""
    if kept is None:
        return dict(plan._body_defaults)
    # tuple.__new__: what Body(...) makes, without its Python-level __new__ (once per record).
    return plan._body_build(_new_tuple(Body, (kept.data(), kept.truncated, content_type)))
