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


def _single_head(lines: list[bytes]) -> str | None:
    """The usual head, found with a few C calls: if ``lines`` hold one head whose blank line
    came last (no interim head before it, nothing after it), that head as text (latin-1), else
    None (:func:`_final_head` says where the final head is). libcurl hands only complete header
    lines (CURLOPT_HEADERFUNCTION), each ending in its line end: a blank line before the last
    shows in the joined text as a line end followed by a blank one.

    >>> _single_head([b"HTTP/1.1 200 OK\\r\\n", b"A: b\\r\\n", b"\\r\\n"])
    'HTTP/1.1 200 OK\\r\\nA: b\\r\\n\\r\\n'
    >>> _single_head([b"HTTP/1.1 103 Early\\r\\n", b"\\r\\n", b"HTTP/1.1 200 OK\\r\\n", b"\\r\\n"])
    """
    if not lines or lines[-1] != _CRLF:
        return None
    text = b"".join(lines).decode("latin-1")
    if len(text) < 3 or text.find("\n\r\n") != len(text) - 3 or "\n\n" in text:
        return None
    return text


def _searchable(lines: list[bytes]) -> tuple[str, str]:
    """A head's lines joined as text (latin-1: one character per byte), and lower-cased
    (latin-1 characters lower one to one, and none to ASCII, so positions and matches hold in
    both): header values are searched for with a few C calls, not line by line in Python."""
    text = b"".join(lines).decode("latin-1")
    return text, text.lower()


def _value_in(searchable: tuple[str, str], name: str) -> str | None:
    """The first value of header ``name`` in a :func:`_searchable` head (its status line
    first), without parsing the others: the first line that starts with "name:", in any case.

    >>> _value_in(_searchable([b"HTTP/1.1 200 OK\\r\\n", b"Content-Length: 12 \\r\\n"]),
    ...           "content-length")
    '12'
    """
    return _value_at(searchable, _SEARCH_KEYS.get(name) or _search_key(name))


def _value_at(searchable: tuple[str, str], key: str) -> str | None:
    """:func:`_value_in` with the name's :func:`_search_key`."""
    head, lowered = searchable
    at = lowered.find(key)
    if at < 0:
        return None
    at += len(key)
    stop = head.find("\n", at)
    return head[at : None if stop < 0 else stop].strip()


_SEARCH_KEYS: dict[str, str] = {}


def _search_key(name: str) -> str:
    """What :func:`_value_in` finds in a lower-cased head for header ``name``."""
    # After a line's end: a name at the start of a line (the status line ends with one).
    key = _SEARCH_KEYS[name] = "\n" + name.lower() + ":"
    return key


def _parse_headers(head: str) -> Headers:
    """The headers of a :func:`_searchable` head's text, after its status line."""
    headers = Headers()
    for line in head.split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return headers
