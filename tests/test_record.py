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
