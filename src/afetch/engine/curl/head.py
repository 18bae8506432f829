"""The response head as libcurl hands it over (its lines): where the final head is, its status,
and header values searched for without parsing every line."""

from __future__ import annotations

from afetch.engine.base import Headers

#: The versions of status lines, as records spell them (others are decoded as they come).
_VERSIONS = {
    b"HTTP/1.1": "HTTP/1.1",
    b"HTTP/1.0": "HTTP/1.0",
    b"HTTP/2": "HTTP/2",
    b"HTTP/2.0": "HTTP/2",
    b"HTTP/3": "HTTP/3",
}
_CRLF = b"\r\n"
_LF = b"\n"
_C_OR_c = b"Cc"
_BLANK = (b"\r\n", b"\n")


def _status_code(rest: bytes) -> int:
    """The status code at the start of ``rest`` (the status line after its version), or 0
    when it is not three digits, 100 to 999, followed by a space or the line's end (RFC 9112).

    >>> _status_code(b"200 OK\\r\\n"), _status_code(b"204\\r\\n"), _status_code(b"2000 OK\\r\\n")
    (200, 204, 0)
    """
    code = rest[:3]
    if len(code) < 3 or not code.isdigit() or code[0] == 48 or rest[3:4] not in _STATUS_ENDS:
        return 0
    return int(code)


_STATUS_ENDS = (b" ", b"\r", b"\n", b"")

#: Status lines seen, as (version, status): a run meets a handful ("HTTP/1.1 200 OK\r\n"), so
#: each response's is one dict look-up. Bounded: a server may vary its reason phrases.
STATUS_LINES: dict[bytes, tuple[str, int]] = {}
_STATUS_LINES_MAX = 64


def _status_line(line: bytes) -> tuple[str, int]:
    """The version (as records spell it) and status code (0 if malformed) of a status line.

    >>> _status_line(b"HTTP/1.1 404 Not Found\\r\\n"), _status_line(b"HTTP/2 2xx\\r\\n")
    (('HTTP/1.1', 404), ('HTTP/2', 0))
    """
    known = STATUS_LINES.get(line)
    if known is not None:
        return known
    version = line.split(b" ", 1)[0]
    known = (
        _VERSIONS.get(version) or version.decode("latin-1"),
        _status_code(line[len(version) + 1 :]),
    )
    if len(STATUS_LINES) < _STATUS_LINES_MAX:
        STATUS_LINES[line] = known
    return known


def _final_head(lines: list[bytes]) -> tuple[int, int]:
    """Where the final head is in the header lines libcurl gave: (index of its status line,
    index of its blank line or ``len(lines)``). 1xx interim heads come before it, each ending in
    a blank line; what follows the final head's blank line are trailers, never a head.

    >>> _final_head([b"HTTP/1.1 103 Early\\r\\n", b"\\r\\n", b"HTTP/1.1 200 OK\\r\\n",
    ...              b"A: b\\r\\n", b"\\r\\n", b"Trailer: x\\r\\n"])
    (2, 4)
    """
    start, count = 0, len(lines)
    while True:
        try:
            end = lines.index(_CRLF, start + 1)  # in C: the usual head ends in CRLF
            if _LF in lines[start + 1 : end]:
                raise ValueError  # a head ending in a bare LF came first
        except ValueError:
            end = start + 1
            while end < count and lines[end] not in _BLANK:
                end += 1
        after = end + 1
        if after < count and lines[after].startswith(b"HTTP/"):
            start = after  # an interim head ended; another head follows
            continue
        return start, end


def _searchable(lines: list[bytes]) -> tuple[bytes, bytes]:
    """A head's lines joined, and lower-cased (ASCII only, so positions hold in both): header
    values are searched for with a few C calls, not line by line in Python."""
    head = b"".join(lines)
    return head, head.lower()


def _value_in(searchable: tuple[bytes, bytes], name: str) -> str | None:
    """The first value of header ``name`` in a :func:`_searchable` head (its status line
    first), without parsing the others: the first line that starts with "name:", in any case.

    >>> _value_in(_searchable([b"HTTP/1.1 200 OK\\r\\n", b"Content-Length: 12 \\r\\n"]),
    ...           "content-length")
    '12'
    """
    key = _SEARCH_KEYS.get(name) or _search_key(name)
    head, lowered = searchable
    at = lowered.find(key)
    if at < 0:
        return None
    at += len(key)
    stop = head.find(b"\n", at)
    return head[at : None if stop < 0 else stop].decode("latin-1").strip()


_SEARCH_KEYS: dict[str, bytes] = {}


def _search_key(name: str) -> bytes:
    """What :func:`_value_in` finds in a lower-cased head for header ``name``."""
    # After a line's end: a name at the start of a line (the status line ends with one).
    key = _SEARCH_KEYS[name] = b"\n" + name.lower().encode("latin-1") + b":"
    return key


def _parse_headers(lines: list[bytes], start: int) -> Headers:
    headers = Headers()
    for raw in lines[start + 1 :]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return headers
