"""Splitting one URL list across machines: ``--shard K/N``.

Every worker reads the whole list and keeps the URLs whose stable hash falls in its part, so the
parts are disjoint and together complete with no coordination. The hash is BLAKE2b of the URL as
given (after stripping), not Python's ``hash``, which is salted per process. A request object
(an input line starting with ``{``) is placed by its method, URL and body
(:func:`afetch._spec.request_key`); one without method or body goes where its URL would.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from afetch._spec import RequestSpec, request_key

#: Where ``--shard auto/N`` finds K, in this order.
INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")


class ShardError(ValueError):
    """``--shard`` cannot be understood; the message is one line for stderr."""


@dataclass(frozen=True, slots=True)
class Shard:
    """Part ``index`` of ``count`` (0-based).

    >>> shard = Shard(0, 2)
    >>> shard.keeps("https://example.org/a") != Shard(1, 2).keeps("https://example.org/a")
    True
    """

    index: int
    count: int

    def keeps(self, url: str) -> bool:
        return part_of(url, self.count) == self.index


def part_of(url: str, count: int) -> int:
    """Which of ``count`` parts ``url`` belongs to; the same in every process and on every host.

    >>> part_of("https://example.org/", 1)
    0
    """
    import hashlib  # here: a run without --shard never loads it (OpenSSL, ~5 ms)

    digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """Parse ``K/N`` or ``auto/N`` (K from a Kubernetes Indexed Job or a Slurm array).

    >>> parse_shard("1/4")
    Shard(index=1, count=4)
    >>> parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "3"})
    Shard(index=3, count=4)
    """
    environ = os.environ if environ is None else environ
    index_text, sep, count_text = text.strip().partition("/")
    if not sep:
        raise ShardError(f"expected K/N or auto/N, got {text!r}")
    count = _non_negative(count_text, "N")
    if count < 1:
        raise ShardError("N must be at least 1")
    if index_text == "auto":
        found = next(((n, environ[n]) for n in INDEX_VARIABLES if environ.get(n, "").strip()), None)
        if found is None:
            raise ShardError(f"auto needs {' or '.join(INDEX_VARIABLES)} in the environment")
        name, value = found
        index = _non_negative(value, name)
    else:
        index = _non_negative(index_text, "K")
    if index >= count:
        raise ShardError(f"K must be between 0 and {count - 1} (0-based), got {index}")
    return Shard(index, count)


def _non_negative(text: str, name: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ShardError(f"{name} must be a whole number, got {text.strip()!r}") from None
    if value < 0:
        raise ShardError(f"{name} must not be negative, got {value}")
    return value


async def only_shard(
    urls: AsyncIterator[str | RequestSpec], shard: Shard
) -> AsyncIterator[str | RequestSpec]:
    """The URLs of ``urls`` in ``shard``; the others yield no record at all."""
    async for url in urls:
        if shard.keeps(url if type(url) is str else request_key(url)):
            yield url
