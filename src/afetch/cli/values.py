"""What the options' values are and how they are checked: the choices (``Method``, ``Format``,
``FailOn``) and the converters of values that need more than a type, each raising
typer.BadParameter for a value it cannot take (declared in :data:`afetch.cli.options.PANELS`).
"""

from __future__ import annotations

import enum
import math
import re
from typing import TYPE_CHECKING

import typer

from afetch._include import parse_include
from afetch.cli.names import VERSION_LINE
from afetch.reports import ReportSpecError, parse_report

if TYPE_CHECKING:
    from afetch.input.shard import Shard


class Method(enum.StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


class Format(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def show_version(value: bool) -> None:
    if value:
        print(VERSION_LINE)
        raise typer.Exit(0)


def _has_control_characters(text: str) -> bool:
    return any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text)


#: The header name a malformed ``-H`` seems to start with: a token followed by a space or '='
#: ("Authorization Bearer ...", "X-Token=..."). A bare word could be the secret itself.
#: A pattern, compiled (and cached by ``re``) only for a malformed -H.
_NAME_START = r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}(?=[\s=:])"


def _bad_header(raw: str) -> typer.BadParameter:
    """A usage error for a malformed ``-H`` that shows its likely name at most, never a value
    (a token given as "Authorization Bearer TOKEN" or without its name at all)."""
    start = re.match(_NAME_START, raw.strip())
    seen = f"a header starting {start[0]!r}" if start else "a header without a name"
    return typer.BadParameter(f"expected 'Name: value', got {seen} (the rest is not shown)")


def _parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise _bad_header(raw)
    if _has_control_characters(value):
        raise typer.BadParameter(f"the value of header {name.strip()!r} has control characters")
    return name.strip(), value.strip()


def parse_headers(raw: list[str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(_parse_header(header) for header in raw or ())


def check_user_agent(text: str) -> str:
    if _has_control_characters(text):
        raise typer.BadParameter("has control characters", param_hint="'-A' / '--user-agent'")
    return text


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(raw: str, *, option: str = "--max-size") -> int:
    """Bytes from ``123``, ``64K``, ``10M`` or ``1G`` (powers of 1024, as curl's --max-filesize).

    >>> parse_size("10M"), parse_size("512"), parse_size("1.5k")
    (10485760, 512, 1536)
    """
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text[-1:] in ("K", "M", "G") else (text, "")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise typer.BadParameter(
            f"expected a size such as 1000000, 500K, 10M or 1G, got {raw!r}",
            param_hint=f"'{option}'",
        )
    return int(value * _SIZE_UNITS[unit])


def parse_max_size(raw: str | None) -> int | None:
    return None if raw is None else parse_size(raw)


def parse_include_option(raw: list[str] | None) -> tuple[str, ...]:
    try:
        return parse_include(raw or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--include'") from None


def parse_body_limit(raw: str) -> int:
    return parse_size(raw, option="--body-limit")


def check_cacert(path: str | None) -> str | None:
    """Load the file once up front, so a bad --cacert is a usage error, not an error per URL."""
    if path is None:
        return None
    import ssl  # here: `afetch --version` and usage errors need no TLS (~14 ms)

    from afetch.engine.tls import load_cacert

    try:
        load_cacert(path)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise typer.BadParameter(
            f"cannot load CA certificates from {path}: {reason}", param_hint="'--cacert'"
        ) from None
    return path


def parse_shard_option(raw: str | None) -> Shard | None:
    if raw is None:
        return None
    # Here: --help and usage errors need neither it nor what it imports (records, JSON, ssl).
    from afetch.input.shard import ShardError, parse_shard

    try:
        return parse_shard(raw)
    except ShardError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None


def parse_reports(raw: list[str] | None) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_report(value) for value in raw or ())
    except ReportSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--report'") from None


def parse_per_host(raw: str | None) -> int | str | None:
    """``--per-host``: a number of requests, or ``auto`` (learned per host).

    >>> parse_per_host("4"), parse_per_host(" AUTO "), parse_per_host(None)
    (4, 'auto', None)
    """
    if raw is None:
        return None
    text = raw.strip().lower()
    if text == "auto":
        return "auto"
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    # No param_hint: raised from the option's callback, click names the option and, for a value
    # from AFETCH_PER_HOST, the variable.
    raise typer.BadParameter(f"expected a number of at least 1, or auto, got {raw!r}")


def parse_accept_option(raw: str | None) -> frozenset[int] | None:
    if raw is None:
        return None
    from afetch.watch.policy import PolicyError, parse_accept

    try:
        return parse_accept(raw)
    except PolicyError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--accept'") from None


def check_ok_if(expression: str | None) -> str | None:
    """Compiled once here, so a bad expression is a usage error before anything is fetched."""
    if expression is None:
        return None
    from afetch.watch.okif import OkIfError, check_expression

    try:
        return check_expression(expression)
    except OkIfError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--ok-if'") from None


class FailOn(enum.StrEnum):
    ANY = "any"
    NEW = "new"
    NONE = "none"


def method_name(value: Method | None) -> str | None:
    return None if value is None else value.value


def negate(value: bool) -> bool:
    return not value
