import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import afetch._record
from afetch import ERROR_TYPES, FetchError, Record
from afetch._errors import classify
from afetch._record import json_lines

SCHEMA_KEYS = [
    "url",
    "final_url",
    "status",
    "ok",
    "error",
    "elapsed_ms",
    "bytes",
    "content_type",
    "http_version",
    "redirects",
    "attempts",
    "started_at",
]


def test_record_json_has_every_documented_key_in_order() -> None:
    record = Record(url="http://127.0.0.1/", status=200, started_at="2026-01-01T00:00:00.000Z")
    assert list(json.loads(record.to_json())) == SCHEMA_KEYS
    assert list(afetch._record.SCHEMA_KEYS) == SCHEMA_KEYS  # what the CSV sink builds on


@pytest.mark.parametrize(
    ("status", "error", "ok"),
    [
        (200, None, True),
        (304, None, True),
        (399, None, True),
        (400, None, False),
        (503, None, False),
        (None, None, False),
        (200, FetchError("timeout", "too slow"), False),
    ],
)
def test_ok_means_no_error_and_status_below_400(
    status: int | None, error: FetchError | None, ok: bool
) -> None:
    assert Record(url="u", status=status, error=error).ok is ok


def test_error_serialises_as_type_and_message() -> None:
    record = Record(url="u", error=FetchError("dns", "no such host"))
    assert json.loads(record.to_json())["error"] == {"type": "dns", "message": "no such host"}


def test_non_ascii_urls_stay_readable() -> None:
    assert "é" in Record(url="http://127.0.0.1/é").to_json()


def test_classify_only_returns_documented_types() -> None:
    for exc in (ValueError("x"), TimeoutError(), ConnectionResetError(104, "reset")):
        assert classify(exc).type in ERROR_TYPES
    assert classify(ConnectionResetError(104, "Connection reset by peer")).type == "reset"
    assert classify(TimeoutError()).type == "timeout"


def test_a_record_serialises_byte_for_byte_as_documented() -> None:
    # The example record of README.md, "Records", exactly: key order, spacing, null and floats.
    record = Record(
        url="http://127.0.0.1:8080/redirect/2",
        final_url="http://127.0.0.1:8080/ok",
        status=200,
        elapsed_ms=3.412,
        bytes=1024,
        content_type="text/plain",
        http_version="HTTP/1.1",
        redirects=2,
        attempts=1,
        started_at="2026-11-25T16:27:23.134Z",
    )
    assert record.to_json() == (
        '{"url":"http://127.0.0.1:8080/redirect/2","final_url":"http://127.0.0.1:8080/ok",'
        '"status":200,"ok":true,"error":null,"elapsed_ms":3.412,"bytes":1024,'
        '"content_type":"text/plain","http_version":"HTTP/1.1","redirects":2,"attempts":1,'
        '"started_at":"2026-11-25T16:27:23.134Z"}'
    )
    failed = Record(url="u", error=FetchError("dns", "no such host"), attempts=0, path="p")
    assert failed.to_json(("not_modified", "path", "sha256")) == (
        '{"url":"u","final_url":null,"status":null,"ok":false,'
        '"error":{"type":"dns","message":"no such host"},"elapsed_ms":0.0,"bytes":0,'
        '"content_type":null,"http_version":null,"redirects":0,"attempts":0,"started_at":"",'
        '"not_modified":null,"path":"p","sha256":null}'
    )


_texts = st.text()
_optional_texts = st.none() | st.text()
_counts = st.integers(min_value=0, max_value=2**63)


@settings(max_examples=300, deadline=None)
@given(
    record=st.builds(
        Record,
        url=_texts,
        final_url=_optional_texts,
        status=st.none() | st.integers(min_value=100, max_value=999),
        error=st.none() | st.builds(FetchError, type=_texts, message=_texts),
        elapsed_ms=st.floats(min_value=0, max_value=1e9, allow_nan=False),
        bytes=_counts,
        content_type=_optional_texts,
        http_version=_optional_texts,
        redirects=_counts,
        attempts=_counts,
        started_at=_texts,
        sha256=_optional_texts,
        path=_optional_texts,
        not_modified=st.none() | st.booleans(),
        method=_optional_texts,
        meta=st.none() | st.dictionaries(st.text(), st.integers() | st.text()),
        extra=st.none() | st.fixed_dictionaries({"title": _optional_texts}),
        verdict=st.none() | st.booleans(),
        watch=st.none() | st.tuples(_texts, _counts, _texts),
    ),
    optional=st.sampled_from(
        [
            None,
            (),
            ("path", "sha256"),
            ("not_modified",),
            ("sha256", "not_modified"),  # written in OPTIONAL_KEYS' order all the same
            ("not_modified", "path", "sha256"),
            ("sha256", "method"),
        ]
    ),
    include=st.sampled_from([(), ("title",), ("body", "body_truncated", "title")]),
)
def test_to_json_writes_what_json_dumps_writes(
    record: Record, optional: tuple[str, ...] | None, include: tuple[str, ...]
) -> None:
    """The record's own JSON writer is json.dumps of to_dict, byte for byte; so is the writer
    thread's, a batch at a time."""
    expected = json.dumps(
        record.to_dict(optional, include), ensure_ascii=False, separators=(",", ":")
    )
    assert record.to_json(optional, include) == expected
    if optional is not None:  # as the sinks pass them
        assert json_lines([record], optional, include) == [(expected + "\n").encode()]


@pytest.mark.parametrize(
    "fields",
    [
        {"status": True},
        {"elapsed_ms": 3},
        {"elapsed_ms": math.inf},
        {"bytes": 2.5},
        {"not_modified": 1},
        {"sha256": 5},
    ],
)
def test_a_field_of_another_type_is_written_as_json_dumps_writes_it(fields: dict) -> None:
    # Not what afetch builds, but a library user may: the general encoder takes over.
    record = Record(url="u", **fields)
    for optional in (None, ("not_modified", "sha256")):
        expected = json.dumps(record.to_dict(optional), ensure_ascii=False, separators=(",", ":"))
        assert record.to_json(optional) == expected
    expected = json.dumps(record.to_dict(()), ensure_ascii=False, separators=(",", ":"))
    assert json_lines([record, record]) == [(expected + "\n").encode()] * 2


def test_new_record_is_record_from_all_its_fields() -> None:
    from dataclasses import FrozenInstanceError, fields

    from afetch._record import new_record

    values = [f"value {i}" for i in range(len(fields(Record)))]
    made = new_record(*values)
    assert made == Record(**{f.name: v for f, v in zip(fields(Record), values, strict=True)})
    assert repr(made) == repr(
        Record(**{f.name: v for f, v in zip(fields(Record), values, strict=True)})
    )
    with pytest.raises(FrozenInstanceError):
        made.url = "changed"  # type: ignore[misc]
