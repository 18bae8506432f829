"""Undoing a body's content coding (gzip, deflate) in bounded pieces, for both engines.

The httpx adapter streams a body through it (``body_pieces`` there), the libcurl engine feeds it
what libcurl delivers. httpx's own decoders inflate a whole network chunk at once: 64 KiB of
gzipped zeros becomes ~64 MiB in one allocation, per request in flight. Here zlib runs with
``max_length``, so one step never produces more than :data:`PIECE` bytes whatever the
compression ratio (a gzip bomb costs time, not memory), and the size cap is checked after every
piece.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from afetch._errors import BadResponse

#: Largest decoded piece handed on at once.
PIECE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
#: Decoded pieces handed on per turn of the event loop, at most (1 MiB): a gzip bomb's
#: inflating is spread over turns, never one long callback.
PIECES_PER_TURN = 16


class _Inflater:
    """gzip or deflate, producing at most ``PIECE`` bytes per step."""

    def __init__(self, encoding: str) -> None:
        self._coding = encoding
        self._gzip = encoding in ("gzip", "x-gzip")
        # deflate should be zlib-wrapped, but servers send raw deflate too (httpx tries both).
        self._wbits = zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS
        self._inflate = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._started:
            self._started = True
            if not self._gzip:
                try:
                    zlib.decompressobj(self._wbits).decompress(data[:64], 1)
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        inflate = self._inflate
        while True:
            try:
                out = inflate.decompress(data, PIECE)
            except zlib.error as exc:
                raise BadResponse(f"cannot decode the body: {exc}") from None
            data = inflate.unconsumed_tail
            if out:
                yield out
            if inflate.eof:
                rest = inflate.unused_data
                if not (self._gzip and rest.startswith(_GZIP_MAGIC[:1])):
                    return  # trailing bytes after the stream are ignored, as browsers do
                # Concatenated gzip members form one body (RFC 1952).
                self._inflate = inflate = zlib.decompressobj(self._wbits)
                data = rest
                continue
            # A full piece may leave output pending inside zlib even with no input left.
            if not data and len(out) < PIECE:
                return

    def finish(self) -> None:
        # No byte at all is no stream (HEAD, 204, 304 with a Content-Encoding): not truncated.
        if self._started and not self._inflate.eof:
            raise BadResponse(
                f"the {self._coding} body ends before its compressed stream does (truncated)"
            )


#: The content codings afetch asks for and decodes itself, on both engines.
ACCEPT_ENCODING = "gzip, deflate"
_CODINGS = ("gzip", "x-gzip", "deflate")


class Decoder:
    """A body's Content-Encoding undone, in pieces of at most ``PIECE`` bytes; one for both
    engines. A compressed stream that stops before its end is a truncated body:
    :meth:`finish` says so.

    >>> import gzip
    >>> whole = gzip.compress(b"x" * 6000)
    >>> decoder = Decoder.of("gzip")
    >>> sum(len(piece) for piece in decoder.feed(whole[:-8]))
    6000
    >>> decoder.finish()
    Traceback (most recent call last):
    afetch._errors.BadResponse: the gzip body ends before its compressed stream does (truncated)
    """

    __slots__ = ("_stages",)

    def __init__(self, stages: list[_Inflater]) -> None:
        self._stages = stages

    @classmethod
    def of(cls, content_encoding: str | None) -> Decoder | None:
        """The decoder for a Content-Encoding header, or ``None`` when there is nothing to undo.
        Codings other than gzip and deflate (never asked for) pass through undecoded."""
        if not content_encoding:
            return None
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        stages = [_Inflater(c) for c in reversed(codings) if c in _CODINGS]
        return cls(stages) if stages else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        return _through(self._stages, data) if data else iter(())

    def finish(self) -> None:
        """Raise :class:`BadResponse` if a compressed stream was begun but never ended."""
        for stage in self._stages:
            stage.finish()


def _through(stages: list[_Inflater], data: bytes) -> Iterator[bytes]:
    if not stages:
        yield data
        return
    first, rest = stages[0], stages[1:]
    for piece in first.feed(data):
        yield from _through(rest, piece)
