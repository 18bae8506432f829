"""The libcurl engine's head: the usual single head found with a few C calls agrees with the
line-by-line search, and the text it is searched and parsed as says what each line says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from afetch.engine.curl.head import (
    _final_head,
    _parse_headers,
    _searchable,
    _single_head,
    _value_in,
)

# Complete header lines, as libcurl hands them (CURLOPT_HEADERFUNCTION): each ends in its line
# end, and none holds another. Blank lines, status lines and odd bytes are likely.
_ENDS = st.sampled_from([b"\r\n", b"\n"])
_BODIES = st.one_of(
    st.just(b""),
    st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 103 Early", b"HTTP/2 204 ", b"\r"]),
    st.sampled_from([b"Content-Type: a/b", b"content-type:x ", b"ETag: \x85\xa0", b"A:\rb"]),
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
)
_LINES = st.lists(st.tuples(_BODIES, _ENDS).map(b"".join), max_size=8)


def _parsed_by_line(lines: list[bytes]) -> list[tuple[str, str]]:
    """Headers parsed one line at a time, as the engine parsed them before the joined text."""
    headers = []
    for raw in lines[1:]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return headers


@given(_LINES)
def test_the_single_head_is_where_the_line_search_finds_it(lines: list[bytes]) -> None:
    text = _single_head(lines)
    if text is not None:
        assert _final_head(lines) == (0, len(lines) - 1)
        assert text == b"".join(lines).decode("latin-1")


@given(_LINES, st.sampled_from(["content-type", "etag", "a", "http/1.1 200 ok"]))
def test_the_joined_head_says_what_each_line_says(lines: list[bytes], name: str) -> None:
    head = _searchable(lines)
    by_line = _parsed_by_line(lines)
    assert list(_parse_headers(head[0])) == by_line
    assert _value_in(head, name) == next((v for k, v in by_line if k == name), None)


def test_an_interim_head_or_a_blank_line_before_the_last_is_not_the_usual_head() -> None:
    interim = [b"HTTP/1.1 103 Early\r\n", b"\r\n", b"HTTP/1.1 200 OK\r\n", b"\r\n"]
    assert _single_head(interim) is None
    assert _single_head([b"HTTP/1.1 200 OK\r\n", b"\n", b"A: b\r\n", b"\r\n"]) is None
    assert _single_head([b"HTTP/1.1 200 OK\r\n", b"A: b\r\n"]) is None  # not ended yet
    assert _single_head([b"", b"\r\n"]) is None
    assert _single_head([b"HTTP/1.1 200 OK\r\n", b"\r\n"]) == "HTTP/1.1 200 OK\r\n\r\n"
