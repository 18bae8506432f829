import json

import pytest

import afetch._record
from afetch import ERROR_TYPES, FetchError, Record
from afetch._errors import classify

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
