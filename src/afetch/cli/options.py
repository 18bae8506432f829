"""Every option of the ``afetch`` command, declared once (one entry of :data:`PANELS`).

An entry gives the flags, type, default, help and whatever ``typer.Option`` needs more. The rest
follows from it: the environment variable (``AFETCH_`` + the long name, ``-`` as ``_``), the
panel of ``--help`` it is listed under, and the :class:`~afetch.Settings` or ``RunOptions`` field
it fills (the long name with ``_`` for ``-``, unless ``to=`` names another). Adding an option is
adding one entry, plus its field in ``Settings`` or ``RunOptions``.
"""

from __future__ import annotations

import enum
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from afetch._include import NAMES as INCLUDE_NAMES
from afetch._include import parse_include
from afetch._settings import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT
from afetch.cli.entry import VERSION_LINE
from afetch.cli.usage import Number
from afetch.reports import KINDS, ReportSpecError, parse_report

if TYPE_CHECKING:
    from afetch.input.shard import Shard

ENV_PREFIX = "AFETCH_"


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


# -- values that need more than a type: each raises typer.BadParameter ---------------------------


def _version(value: bool) -> None:
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


def _parse_headers(raw: list[str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(_parse_header(header) for header in raw or ())


def _check_user_agent(text: str) -> str:
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


def _parse_max_size(raw: str | None) -> int | None:
    return None if raw is None else parse_size(raw)


def _parse_include(raw: list[str] | None) -> tuple[str, ...]:
    try:
        return parse_include(raw or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--include'") from None


def _parse_body_limit(raw: str) -> int:
    return parse_size(raw, option="--body-limit")


def _check_cacert(path: str | None) -> str | None:
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


def _parse_shard(raw: str | None) -> Shard | None:
    if raw is None:
        return None
    # Here: --help and usage errors need neither it nor what it imports (records, JSON, ssl).
    from afetch.input.shard import ShardError, parse_shard

    try:
        return parse_shard(raw)
    except ShardError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None


def _parse_reports(raw: list[str] | None) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_report(value) for value in raw or ())
    except ReportSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--report'") from None


def _parse_per_host(raw: str | None) -> int | str | None:
    """``--per-host``: a number of requests, or ``auto`` (learned per host).

    >>> _parse_per_host("4"), _parse_per_host(" AUTO "), _parse_per_host(None)
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


def _parse_accept(raw: str | None) -> frozenset[int] | None:
    if raw is None:
        return None
    from afetch.watch.policy import PolicyError, parse_accept

    try:
        return parse_accept(raw)
    except PolicyError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--accept'") from None


def _check_ok_if(expression: str | None) -> str | None:
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


def _method(value: Method | None) -> str | None:
    return None if value is None else value.value


def _not(value: bool) -> bool:
    return not value


# -- the declaration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opt:
    """One command-line option.

    >>> spec = opt("--max-host-errors", type=int | None, default=None, help="K failures.")
    >>> spec.name, spec.envvar, spec.field
    ('max_host_errors', 'AFETCH_MAX_HOST_ERRORS', 'max_host_errors')
    >>> opt("--follow/--no-follow", type=bool, default=True, help="", to="follow_redirects").field
    'follow_redirects'
    """

    #: click's flags: ``("-c", "--concurrency")`` or ``("--follow/--no-follow",)``.
    decls: tuple[str, ...]
    type: Any
    default: Any
    help: str
    metavar: str | None = None
    #: The Settings or RunOptions field this option fills, when it is not ``name``.
    to: str | None = None
    #: Turns the parsed value into the field's value; raises typer.BadParameter if it cannot.
    convert: Callable[[Any], Any] | None = None
    #: False for an option without an environment variable (``--version``).
    env: bool = True
    #: The ``--help`` panel; set from the key of :data:`PANELS`.
    panel: str = ""
    #: More keywords for ``typer.Option`` (``min``, ``show_default``, ``case_sensitive``, ...).
    click: dict[str, Any] = field(default_factory=dict)

    @property
    def long(self) -> str:
        """``concurrency`` for ``--concurrency``, ``follow`` for ``--follow/--no-follow``."""
        first = next(decl for decl in self.decls if decl.startswith("--"))
        return first.split("/")[0].removeprefix("--")

    @property
    def name(self) -> str:
        """The Python name of the parameter."""
        return self.long.replace("-", "_")

    @property
    def field(self) -> str:
        return self.to or self.name

    @property
    def envvar(self) -> str | None:
        return ENV_PREFIX + self.name.upper() if self.env else None

    def parameter(self) -> inspect.Parameter:
        """The keyword parameter Typer builds the click option from."""
        click = dict(self.click)
        if self.type in _NUMBERS:
            # Bounds and errors that say what the number counts (afetch.cli.usage).
            kind = _NUMBERS[self.type]
            low, high = click.pop("min", None), click.pop("max", None)
            click["click_type"] = Number(kind, self.metavar, low, high)
        info = typer.Option(
            *self.decls,
            metavar=self.metavar,
            envvar=self.envvar,
            help=self.help,
            rich_help_panel=self.panel or None,
            **click,
        )
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=self.default,
            annotation=Annotated[self.type, info],
        )

    def value(self, raw: Any) -> Any:
        return raw if self.convert is None else self.convert(raw)


_NUMBERS: dict[Any, type] = {int: int, float: float, int | None: int, float | None: float}

_OWN = frozenset(f.name for f in fields(Opt)) - {"decls", "type", "default", "help", "click"}


def opt(*decls: str, type: Any, default: Any, help: str, **keywords: Any) -> Opt:
    """An :class:`Opt`; keywords that are not its fields go to ``typer.Option``."""
    own = {key: keywords.pop(key) for key in list(keywords) if key in _OWN}
    return Opt(decls, type, default, help, click=keywords, **own)


NO_LIMIT = "no limit"

# One entry per option; the order is the order of `afetch --help`.
# fmt: off
PANELS: dict[str, tuple[Opt, ...]] = {
    "Requests": (
        opt("-c", "--concurrency", type=int, default=10, metavar="N", min=1, max=100_000,
            help="At most N requests in flight."),
        opt("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", min=0.001,
            help="Deadline in seconds for a whole request: connect, headers and body."),
        opt("--connect-timeout", type=float | None, default=None, metavar="SECONDS", min=0.001,
            help="Deadline in seconds for connecting [default: --timeout]."),
        opt("-H", "--header", type=list[str] | None, default=None, metavar='"NAME: VALUE"',
            to="headers", convert=_parse_headers,
            help="Extra request header 'Name: value' (repeatable); never echoed."),
        opt("-A", "--user-agent", type=str, default=DEFAULT_USER_AGENT, metavar="TEXT",
            convert=_check_user_agent, help="User-Agent header."),
        opt("-X", "--method", type=Method | None, default=None, metavar="METHOD",
            case_sensitive=False, convert=_method, show_default="GET, or POST with -d/--json",
            help="Request method: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS."),
        opt("-d", "--data", type=list[str] | None, default=None, metavar="TEXT|@FILE",
            help="Send this form-encoded body (as curl -d; @FILE reads a file, @- stdin); "
            "repeatable, joined with &."),
        opt("--json", type=list[str] | None, default=None, metavar="TEXT|@FILE",
            help="Send this JSON body with Content-Type and Accept application/json (as curl "
            "--json; @FILE, @-)."),
        opt("--follow/--no-follow", type=bool, default=True, to="follow_redirects",
            help="Follow redirects."),
        opt("--max-redirects", type=int, default=10, metavar="N", min=0,
            help="Redirects followed before the error too_many_redirects."),
        opt("--http2", type=bool, default=False,
            help="Offer HTTP/2 (TLS + ALPN). Default: HTTP/1.1."),
        opt("--http3", type=bool, default=False,
            help="Try HTTP/3 (QUIC) first; fall back to HTTP/2 or 1.1 over TCP, as curl --http3."),
        opt("-x", "--proxy", type=str | None, default=None, metavar="URL",
            show_default="http_proxy, https_proxy, all_proxy from the environment",
            help="Send every request through this proxy: http://, https://, socks4://, "
            "socks5://, socks5h://[user:pass@]host:port; '' for none. Never echoed."),
        opt("--noproxy", type=str | None, default=None, metavar="LIST",
            show_default="no_proxy from the environment",
            help="Comma-separated hosts, domains, IPs or CIDR ranges reached without the proxy; "
            "'*' for all."),
    ),
    "Retries and politeness": (
        opt("--retries", type=int, default=2, metavar="N", min=0, max=100,
            help="Retries after connect errors, timeouts, resets, 429, 502, 503, 504; a POST or "
            "PATCH only after a connect error."),
        opt("--backoff", type=float, default=0.5, metavar="SECONDS", min=0.0,
            help="Backoff base in seconds: retry n waits a random 0..BACKOFF*2^(n-1) s."),
        opt("--max-retry-wait", type=float, default=60.0, metavar="SECONDS", min=0.0,
            help="Longest wait before a retry; a longer Retry-After ends the retries."),
        opt("--confirm", type=bool, default=False,
            help="At the end, try each failure once more (a HEAD as a GET) after "
            "--confirm-delay; the record is that try's, with confirmed: true|false."),
        opt("--confirm-delay", type=float, default=5.0, metavar="SECONDS", min=0.0,
            help="Pause before --confirm tries the failures again."),
        opt("--per-host", type=str | None, default=None, metavar="N|auto",
            callback=_parse_per_host, show_default=NO_LIMIT,
            help="At most N requests in flight per host (scheme+host+port); auto: start at 2, "
            "one more after each window of fast answers, halve on 429/503/timeouts/resets."),
        opt("--rate", type=float | None, default=None, metavar="R", min=0.001,
            show_default=NO_LIMIT,
            help="At most R requests started per second overall (retries included)."),
        opt("--host-rate", type=float | None, default=None, metavar="R", min=0.001,
            show_default=NO_LIMIT,
            help="At most R requests started per second per host (retries included)."),
        opt("--max-host-errors", type=int | None, default=None, metavar="K", min=1,
            show_default="off",
            help="After K connection failures in a row to a host, fail its other URLs fast."),
        opt("--rate-limit-headers", type=bool, default=False,
            help="Pace each host by the rate-limit fields it sends (RateLimit, X-RateLimit-*) "
            "and by Retry-After: nothing more than they allow."),
    ),
    "Limits and safety": (
        opt("--max-size", type=str | None, default=None, metavar="BYTES",
            convert=_parse_max_size,
            help="Abort a body beyond BYTES (suffixes K, M, G: powers of 1024); error too_large."),
        opt("--no-private", type=bool, default=False,
            help="Refuse URLs and redirects to loopback, private, link-local or other "
            "non-global addresses; error blocked."),
        opt("-k", "--insecure", type=bool, default=False, to="verify", convert=_not,
            help="Do not verify TLS certificates."),
        opt("--cacert", type=str | None, default=None, metavar="FILE", convert=_check_cacert,
            help="Verify TLS with the CA certificates in this PEM file instead of the defaults."),
    ),
    "Output": (
        opt("-o", "--output", type=str | None, default=None, metavar="FILE",
            show_default="stdout", help="Write records to FILE (missing folders are created)."),
        opt("--format", type=Format, default=Format.JSONL, case_sensitive=False, convert=str,
            help="Records as JSON Lines, or CSV with a header row (error as error_type, "
            "error_message)."),
        opt("--ordered", type=bool, default=False,
            help="Records in input order (a bounded window: a slow URL holds back the rest)."),
        opt("--progress/--no-progress", type=bool | None, default=None,
            show_default="on when stderr is a terminal",
            help="Live progress table on stderr; plain status lines when it is not a terminal."),
        opt("--progress-interval", type=float, default=10.0, metavar="SECONDS", min=0.001,
            help="Seconds between plain status lines when stderr cannot redraw."),
        opt("-q", "--quiet", type=bool, default=False,
            help="No progress and no summary on stderr."),
        opt("--include", type=list[str] | None, default=None, metavar="LIST",
            convert=_parse_include, show_default="none",
            help=f"Add record keys, comma-separated (repeatable): {', '.join(INCLUDE_NAMES)}."),
        opt("--body-limit", type=str, default="1M", metavar="BYTES", convert=_parse_body_limit,
            help="Bytes of a body kept for --include body, json, title (K, M, G suffixes); "
            "the rest is counted, not kept."),
    ),
    "Cron and pipelines": (
        opt("--state", type=str | None, default=None, metavar="FILE",
            help="Journal each completed URL to FILE (locked; started afresh unless --resume)."),
        opt("--resume", type=bool, default=False,
            help="Resume an unfinished --state run: skip the URLs done, append to -o FILE."),
        opt("--cache", type=str | None, default=None, metavar="DIR", to="cache_dir",
            help="Keep ETag/Last-Modified in DIR; send conditional requests (304: not_modified)."),
        opt("--save-dir", type=str | None, default=None, metavar="DIR",
            help="Save 2xx bodies under DIR/HOST/; records gain path and sha256."),
        opt("--hash", type=bool, default=False, to="hash_bodies",
            help="Add the sha256 of each 2xx body to its record."),
        opt("--shard", type=str | None, default=None, metavar="K/N", convert=_parse_shard,
            help="Fetch only part K of N (0-based) of the list; auto/N takes K from "
            "JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID."),
        opt("--report", type=list[str] | None, default=None, metavar="KIND=PATH", to="reports",
            convert=_parse_reports,
            help=f"When the run ends (stopped too), write a report to PATH (repeatable; replaced "
            f"atomically): {', '.join(KINDS)}."),
    ),
    "Watching (cron and CI)": (
        opt("--history", type=str | None, default=None, metavar="FILE",
            help="Remember each URL's recent outcomes in FILE (SQLite, locked); records gain "
            "change, streak, since."),
        opt("--fail-on", type=FailOn, default=FailOn.ANY, case_sensitive=False, convert=str,
            help="Exit 1 for: any URL not ok; new: only a URL that just started failing "
            "(--history); none: never."),
        opt("--fail-after", type=int, default=1, metavar="N", min=1,
            help="A URL counts for --fail-on only after N runs in a row not ok (--history)."),
        opt("--accept", type=str | None, default=None, metavar="STATUSES",
            convert=_parse_accept, show_default="below 400",
            help="Statuses that are ok, as 200-299,301,429 (judged after retries)."),
        opt("--accept-timeouts", type=bool, default=False,
            help="A URL that timed out (after its retries) is ok."),
        opt("--ok-if", type=str | None, default=None, metavar="JQ", convert=_check_ok_if,
            help="A jq expression on each record decides ok, e.g. '.ok and .elapsed_ms < 2000'."),
    ),
    "Other": (
        opt("--demo", type=bool, default=False,
            help="Serve a few hundred URLs on 127.0.0.1 and fetch them "
            "(--timeout 2 unless given)."),
        opt("--version", type=bool, default=False, env=False, callback=_version, is_eager=True,
            help="Show the version."),
    ),
}
# fmt: on

#: Every option, with its panel, in ``--help`` order.
OPTIONS: tuple[Opt, ...] = tuple(
    replace(spec, panel=panel) for panel, specs in PANELS.items() for spec in specs
)
#: Option values that steer the command line itself and fill no field (-d and --json become
#: ``Settings.body`` and ``body_kind`` in ``cli.command``, which knows whether stdin is the input).
CLI_ONLY = frozenset({"demo", "version", "data", "json"})
#: Settings fields no single option fills: ``cli.command`` derives them from -d and --json.
DERIVED = frozenset({"body", "body_kind"})

SOURCES = inspect.Parameter(
    "sources",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SOURCES",
            help="Files of URLs, one per line; '-' for stdin (the default when stdin is piped).",
            show_default=False,
        ),
    ],
)
