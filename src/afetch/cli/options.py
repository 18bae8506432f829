"""Every option of the ``afetch`` command, declared once (one entry of :data:`PANELS`).

An entry gives the flags, type, default, help and whatever ``typer.Option`` needs more. The rest
follows from it: the environment variable (``AFETCH_`` + the long name, ``-`` as ``_``), the
panel of ``--help`` it is listed under, and the :class:`~afetch.Settings` or ``RunOptions`` field
it fills (the long name with ``_`` for ``-``, unless ``to=`` names another). Adding an option is
adding one entry, plus its field in ``Settings`` or ``RunOptions``. What an entry is:
:class:`afetch.cli.declaration.Opt`; the choices and converters it names: afetch.cli.values.
"""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from afetch._include import NAMES as INCLUDE_NAMES
from afetch._settings import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT
from afetch.cli.declaration import Opt, opt
from afetch.cli.values import (
    FailOn,
    Format,
    Method,
    check_cacert,
    check_ok_if,
    check_user_agent,
    method_name,
    negate,
    parse_accept_option,
    parse_body_limit,
    parse_headers,
    parse_include_option,
    parse_max_size,
    parse_per_host,
    parse_reports,
    parse_shard_option,
    show_version,
)
from afetch.reports import KINDS

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
            to="headers", convert=parse_headers,
            help="Extra request header 'Name: value' (repeatable); never echoed."),
        opt("-A", "--user-agent", type=str, default=DEFAULT_USER_AGENT, metavar="TEXT",
            convert=check_user_agent, help="User-Agent header."),
        opt("-X", "--method", type=Method | None, default=None, metavar="METHOD",
            case_sensitive=False, convert=method_name, show_default="GET, or POST with -d/--json",
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
            help="At the end, try each URL not ok once more (a HEAD as a GET) after "
            "--confirm-delay; the record is that try's, with confirmed: true|false."),
        opt("--confirm-delay", type=float, default=5.0, metavar="SECONDS", min=0.0,
            help="Pause before --confirm tries the failures again."),
        opt("--per-host", type=str | None, default=None, metavar="N|auto",
            callback=parse_per_host, show_default=NO_LIMIT,
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
            convert=parse_max_size,
            help="Abort a body beyond BYTES (suffixes K, M, G: powers of 1024); error too_large."),
        opt("--no-private", type=bool, default=False,
            help="Refuse URLs and redirects to loopback, private, link-local or other "
            "non-global addresses; error blocked."),
        opt("-k", "--insecure", type=bool, default=False, to="verify", convert=negate,
            help="Do not verify TLS certificates."),
        opt("--cacert", type=str | None, default=None, metavar="FILE", convert=check_cacert,
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
            convert=parse_include_option, show_default="none",
            help=f"Add record keys, comma-separated (repeatable): {', '.join(INCLUDE_NAMES)}."),
        opt("--body-limit", type=str, default="1M", metavar="BYTES", convert=parse_body_limit,
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
        opt("--shard", type=str | None, default=None, metavar="K/N", convert=parse_shard_option,
            help="Fetch only part K of N (0-based) of the list; auto/N takes K from "
            "JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID."),
        opt("--report", type=list[str] | None, default=None, metavar="KIND=PATH", to="reports",
            convert=parse_reports,
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
            convert=parse_accept_option, show_default="below 400",
            help="Statuses that are ok, as 200-299,301,429 (judged after retries)."),
        opt("--accept-timeouts", type=bool, default=False,
            help="A URL that timed out (after its retries) is ok."),
        opt("--ok-if", type=str | None, default=None, metavar="JQ", convert=check_ok_if,
            help="A jq expression on each record decides ok, e.g. '.ok and .elapsed_ms < 2000'."),
    ),
    "Other": (
        opt("--demo", type=bool, default=False,
            help="Serve a few hundred URLs on 127.0.0.1 and fetch them "
            "(--timeout 2 unless given)."),
        opt("--version", type=bool, default=False, env=False, callback=show_version, is_eager=True,
            help="Show the version."),
    ),
}
# fmt: on

#: Every option, with its panel, in ``--help`` order.
OPTIONS: tuple[Opt, ...] = tuple(
    spec._replace(panel=panel) for panel, specs in PANELS.items() for spec in specs
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
