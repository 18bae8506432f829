"""``--report junit=PATH``: JUnit XML, one testcase per URL, for CI test-report views.

Streamed: each record's ``<testcase>`` goes to the temporary file as the writer thread counts
it, so memory stays flat whatever the list size (200,000 URLs included). The counts the root
elements carry are only known at the end: the file starts with room for them (spaces, which XML
allows between elements), filled in before the rename.

A URL not ok is a ``<failure>``, its ``type`` the error type or ``http_STATUS``, its message
the error message; URLs and messages have their passwords masked (afetch._redact), and
characters XML 1.0 cannot carry become U+FFFD. tests/junit.xsd is the schema it is checked
against.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable

from afetch._record import Record
from afetch._redact import mask_url, redact
from afetch.reports.atomic import TempFile
from afetch.reports.summary import Outcome, change_of, host_of

_PROLOGUE = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: Bytes kept after the prologue for the root elements and their counts.
_HEAD_ROOM = 512
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def attribute(text: str) -> str:
    """``text`` as a double-quoted attribute value's content.

    >>> attribute('a<b & "c"\\x00\\n')
    'a&lt;b &amp; &quot;c&quot;\ufffd&#10;'
    """
    # Chained str.replace: several times faster than str.translate with a table, per URL.
    if _NOT_XML.search(text):
        text = _NOT_XML.sub("\ufffd", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace('"', "&quot;")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    return text


def _text(text: str) -> str:
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def testcase(record: Record) -> str:
    url = mask_url(record.url)
    head = (
        f'<testcase name="{attribute(url)}" classname="{attribute(host_of(record.url))}" '
        f'time="{record.elapsed_ms / 1000:.3f}"'
    )
    error, status = record.error, record.status
    if error is None and status is not None and status < 400:
        return head + "/>\n"
    if error is not None:
        kind, message = error.type, redact(error.message)
    else:
        kind = f"http_{status}" if status is not None else "other"
        message = f"HTTP status {status}"
    final = record.final_url
    details = [f"url: {url}", f"attempts: {record.attempts}"]
    if final is not None and final != record.url:
        details.append(f"final_url: {mask_url(final)}")
    if status is not None:
        details.append(f"status: {status}")
    change = change_of(record)
    if change is not None:
        details.append(f"change: {change}")
    return (
        f'{head}>\n  <failure type="{attribute(kind)}" message="{attribute(message)}">'
        f"{_text(chr(10).join(details))}</failure>\n</testcase>\n"
    )


class Report:
    def __init__(self, path: str) -> None:
        self._temp = TempFile(path)
        self._temp.file.write(_PROLOGUE + b" " * _HEAD_ROOM + b"\n")
        self._tests = 0
        self._failures = 0
        self._trouble: OSError | None = None

    def add_many(self, records: Iterable[Record]) -> None:
        """The records' testcases, appended (the writer thread; never raises)."""
        if self._trouble is not None:
            return
        parts = []
        for record in records:
            parts.append(testcase(record))
            self._tests += 1
            self._failures += not record.ok
        try:
            self._temp.file.write("".join(parts).encode("utf-8"))
        except OSError as exc:  # reported when the run ends; the records go on
            self._trouble = exc

    def write(self, outcome: Outcome) -> None:
        if self._trouble is not None:
            raise self._trouble
        summary = outcome.summary
        counts = f'tests="{self._tests}" failures="{self._failures}" errors="0"'
        # time: the run's duration (the testcases' times overlap, -c at a time).
        duration = f'time="{summary["duration_s"]:.3f}"'
        head = (
            f'<testsuites name="afetch" {counts} {duration}>\n'
            f'<testsuite name="afetch" {counts} skipped="0" {duration} '
            f'timestamp="{summary["started_at"][:19]}" hostname="{attribute(_hostname())}">'
        ).encode()
        file = self._temp.file
        file.write(b"</testsuite>\n</testsuites>\n")
        file.seek(len(_PROLOGUE))
        file.write(head[:_HEAD_ROOM])
        self._temp.commit()

    def discard(self) -> None:
        self._temp.discard()


def _hostname() -> str:
    return socket.gethostname()[:64]
