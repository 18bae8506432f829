"""The ``afetch`` command: parses options with Typer and hands them to the async core."""

from __future__ import annotations

import enum
import math
import ssl
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from afetch._settings import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, INCLUDE_CHOICES, Settings
from afetch._shard import Shard, ShardError, parse_shard
from afetch._signals import exit_on_signals
from afetch._tls import load_cacert
from afetch._version import __version__

if TYPE_CHECKING:
    from afetch._app import RunOptions

# Like EXIT_USAGE in afetch._app, which is imported only when a run starts: it pulls in httpx,
# pycurl and rich, and `afetch --version` or a usage error needs none of them.
EXIT_USAGE = 2


def error_line(message: str) -> None:
    print(f"afetch: error: {message}", file=sys.stderr)


EPILOG = """\
Examples:

  afetch urls.txt -c 50 > results.jsonl

  afetch urls.txt | jq -r 'select(.ok|not) | .url'

  grep -o 'https://[^ ]*' page.html | afetch - --timeout 5

  afetch --demo -c 50        (an offline run against a built-in loopback server)

Exit codes: 0 every URL ok, 1 some URL not ok, 2 usage error, 74 records could not be
written, 130 SIGINT, 143 SIGTERM, 141 output closed early.
"""

# Typer re-exports BadParameter; its bases are click's UsageError and ClickException, whether this
# Typer uses click itself or its own vendored copy of it.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class Method(enum.StrEnum):
    GET = "GET"
    HEAD = "HEAD"


class Format(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"afetch {__version__}")
        raise typer.Exit(0)


def _has_control_characters(text: str) -> bool:
    return any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text)


def _parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        # Only the name is shown: the value may be a secret.
        raise typer.BadParameter(f"expected 'Name: value', got a header named {name.strip()!r}")
    if _has_control_characters(value):
        raise typer.BadParameter(f"the value of header {name.strip()!r} has control characters")
    return name.strip(), value.strip()


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


def _check_cacert(path: str | None) -> str | None:
    """Load the file once up front, so a bad --cacert is a usage error, not an error per URL."""
    if path is None:
        return None
    try:
        load_cacert(path)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise typer.BadParameter(
            f"cannot load CA certificates from {path}: {reason}", param_hint="'--cacert'"
        ) from None
    return path


@app.command(epilog=EPILOG, no_args_is_help=False)
def command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SOURCES",
            help="Files of URLs, one per line; '-' for stdin (the default when stdin is piped).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "-c",
            "--concurrency",
            metavar="N",
            min=1,
            max=100_000,
            envvar="AFETCH_CONCURRENCY",
            help="At most N requests in flight.",
        ),
    ] = 10,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.001,
            envvar="AFETCH_TIMEOUT",
            help="Deadline in seconds for a whole request: connect, headers and body.",
        ),
    ] = DEFAULT_TIMEOUT,
    connect_timeout: Annotated[
        float | None,
        typer.Option(
            "--connect-timeout",
            metavar="SECONDS",
            min=0.001,
            envvar="AFETCH_CONNECT_TIMEOUT",
            help="Deadline in seconds for connecting [default: --timeout].",
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "-H",
            "--header",
            metavar='"NAME: VALUE"',
            envvar="AFETCH_HEADER",
            help="Extra request header 'Name: value' (repeatable); never echoed.",
        ),
    ] = None,
    user_agent: Annotated[
        str,
        typer.Option(
            "-A",
            "--user-agent",
            metavar="TEXT",
            envvar="AFETCH_USER_AGENT",
            help="User-Agent header.",
        ),
    ] = DEFAULT_USER_AGENT,
    method: Annotated[
        Method,
        typer.Option(
            "-X",
            "--method",
            metavar="GET|HEAD",
            envvar="AFETCH_METHOD",
            case_sensitive=False,
            help="Request method.",
        ),
    ] = Method.GET,
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", envvar="AFETCH_FOLLOW", help="Follow redirects."),
    ] = True,
    max_redirects: Annotated[
        int,
        typer.Option(
            "--max-redirects",
            metavar="N",
            min=0,
            envvar="AFETCH_MAX_REDIRECTS",
            help="Redirects followed before the error too_many_redirects.",
        ),
    ] = 10,
    insecure: Annotated[
        bool,
        typer.Option(
            "-k", "--insecure", envvar="AFETCH_INSECURE", help="Do not verify TLS certificates."
        ),
    ] = False,
    http2: Annotated[
        bool,
        typer.Option(
            "--http2",
            envvar="AFETCH_HTTP2",
            help="Offer HTTP/2 (TLS + ALPN). Default: HTTP/1.1.",
        ),
    ] = False,
    cacert: Annotated[
        str | None,
        typer.Option(
            "--cacert",
            envvar="AFETCH_CACERT",
            metavar="FILE",
            help="Verify TLS with the CA certificates in this PEM file instead of the defaults.",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            envvar="AFETCH_MAX_SIZE",
            metavar="BYTES",
            help="Abort a body beyond BYTES (suffixes K, M, G: powers of 1024); error too_large.",
        ),
    ] = None,
    no_private: Annotated[
        bool,
        typer.Option(
            "--no-private",
            envvar="AFETCH_NO_PRIVATE",
            help="Refuse URLs and redirects to loopback, private, link-local or other "
            "non-global addresses; error blocked.",
        ),
    ] = False,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            metavar="N",
            min=0,
            max=100,
            envvar="AFETCH_RETRIES",
            help="Retries after connect errors, timeouts, resets, 429, 502, 503, 504 (GET/HEAD).",
        ),
    ] = 2,
    backoff: Annotated[
        float,
        typer.Option(
            "--backoff",
            metavar="SECONDS",
            min=0.0,
            envvar="AFETCH_BACKOFF",
            help="Backoff base in seconds: retry n waits a random 0..BACKOFF*2^(n-1) s.",
        ),
    ] = 0.5,
    max_retry_wait: Annotated[
        float,
        typer.Option(
            "--max-retry-wait",
            metavar="SECONDS",
            min=0.0,
            envvar="AFETCH_MAX_RETRY_WAIT",
            help="Longest wait before a retry; a longer Retry-After ends the retries.",
        ),
    ] = 60.0,
    per_host: Annotated[
        int | None,
        typer.Option(
            "--per-host",
            metavar="N",
            min=1,
            envvar="AFETCH_PER_HOST",
            show_default="no limit",
            help="At most N requests in flight per host (scheme+host+port).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            metavar="R",
            min=0.001,
            envvar="AFETCH_RATE",
            show_default="no limit",
            help="At most R requests started per second overall (retries included).",
        ),
    ] = None,
    host_rate: Annotated[
        float | None,
        typer.Option(
            "--host-rate",
            metavar="R",
            min=0.001,
            envvar="AFETCH_HOST_RATE",
            show_default="no limit",
            help="At most R requests started per second per host (retries included).",
        ),
    ] = None,
    max_host_errors: Annotated[
        int | None,
        typer.Option(
            "--max-host-errors",
            metavar="K",
            min=1,
            envvar="AFETCH_MAX_HOST_ERRORS",
            show_default="off",
            help="After K connection failures in a row to a host, fail its other URLs fast.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            envvar="AFETCH_OUTPUT",
            show_default="stdout",
            help="Write records to FILE.",
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            envvar="AFETCH_PROGRESS",
            show_default="on when stderr is a terminal",
            help="Live progress table on stderr.",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "-q", "--quiet", envvar="AFETCH_QUIET", help="No progress and no summary on stderr."
        ),
    ] = False,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            envvar="AFETCH_FORMAT",
            case_sensitive=False,
            help="Records as JSON Lines, or CSV with a header row (error as error_type, "
            "error_message).",
        ),
    ] = Format.JSONL,
    ordered: Annotated[
        bool,
        typer.Option(
            "--ordered",
            envvar="AFETCH_ORDERED",
            help="Records in input order (a bounded window: a slow URL holds back the rest).",
        ),
    ] = False,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            envvar="AFETCH_STATE",
            metavar="FILE",
            help="Journal each completed URL to FILE (started afresh unless --resume).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            envvar="AFETCH_RESUME",
            help="Skip URLs the --state journal holds; append to it and to -o FILE.",
        ),
    ] = False,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            envvar="AFETCH_CACHE",
            metavar="DIR",
            help="Keep ETag/Last-Modified in DIR; send conditional requests (304: not_modified).",
        ),
    ] = None,
    save_dir: Annotated[
        str | None,
        typer.Option(
            "--save-dir",
            envvar="AFETCH_SAVE_DIR",
            metavar="DIR",
            help="Save 2xx bodies under DIR/HOST/; records gain path and sha256.",
        ),
    ] = None,
    hash_bodies: Annotated[
        bool,
        typer.Option(
            "--hash", envvar="AFETCH_HASH", help="Add the sha256 of each 2xx body to its record."
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            envvar="AFETCH_SHARD",
            metavar="K/N",
            help="Fetch only part K of N (0-based) of the list; auto/N takes K from "
            "JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID.",
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            envvar="AFETCH_DEMO",
            help="Serve a few hundred URLs on 127.0.0.1 and fetch them (--timeout 2 unless given).",
        ),
    ] = False,
    # --- --include and --body-limit (issue 9, item 1): one block, for the option-groups port --
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            metavar="LIST",
            envvar="AFETCH_INCLUDE",
            show_default="none",
            help=f"Add record keys, comma-separated (repeatable): {', '.join(INCLUDE_CHOICES)}.",
        ),
    ] = None,
    body_limit: Annotated[
        str,
        typer.Option(
            "--body-limit",
            metavar="BYTES",
            envvar="AFETCH_BODY_LIMIT",
            help="Bytes of a body kept for --include body, json, title (K, M, G suffixes); "
            "the rest is counted, not kept.",
        ),
    ] = "1M",
    # --- end of the --include block ----------------------------------------------------------
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> int:
    """Fetch URLs concurrently and write one JSON record per URL to stdout."""
    headers = tuple(_parse_header(raw) for raw in header or ())
    sources_given = tuple(sources or ())
    if demo and sources_given:
        raise typer.BadParameter("--demo takes no SOURCES", param_hint="SOURCES")
    if not sources_given and not demo:
        if sys.stdin is None or sys.stdin.isatty():
            raise typer.BadParameter(
                "no input: give a file of URLs, or pipe URLs to stdin", param_hint="SOURCES"
            )
        sources_given = ("-",)
    if resume and state is None:
        raise typer.BadParameter("--resume needs --state FILE", param_hint="--resume")
    if _has_control_characters(user_agent):
        raise typer.BadParameter("has control characters", param_hint="'-A' / '--user-agent'")
    try:
        settings = Settings(
            concurrency=concurrency,
            timeout=timeout,
            connect_timeout=connect_timeout,
            headers=headers,
            user_agent=user_agent,
            method=method.value,
            follow_redirects=follow,
            max_redirects=max_redirects,
            verify=not insecure,
            http2=http2,
            cacert=_check_cacert(cacert),
            max_size=None if max_size is None else parse_size(max_size),
            no_private=no_private,
            retries=retries,
            backoff=backoff,
            max_retry_wait=max_retry_wait,
            per_host=per_host,
            rate=rate,
            host_rate=host_rate,
            max_host_errors=max_host_errors,
            ordered=ordered,
            cache_dir=cache,
            save_dir=save_dir,
            hash_bodies=hash_bodies,
            include=_include_option(include),
            body_limit=parse_size(body_limit, option="--body-limit"),
        )
    except ValueError as exc:
        # Ranges Typer cannot express (inf, say) are still one usage line, never a traceback.
        raise typer.BadParameter(str(exc)) from None
    from afetch._app import RunOptions, run

    show_progress = (not quiet and sys.stderr.isatty()) if progress is None else progress
    options = RunOptions(
        sources=sources_given,
        output=output,
        progress=show_progress,
        quiet=quiet,
        format=output_format.value,
        state=state,
        resume=resume,
        shard=_shard_option(shard),
    )
    if demo:
        return _run_demo(settings, options)
    import asyncio  # here, not at the top: `afetch --version` need not pay for it

    return asyncio.run(run(settings, options))


def _include_option(raw: list[str] | None) -> tuple[str, ...]:
    from afetch._settings import parse_include

    try:
        return parse_include(raw or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--include'") from None


def _shard_option(raw: str | None) -> Shard | None:
    if raw is None:
        return None
    try:
        return parse_shard(raw)
    except ShardError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None


def _run_demo(settings: Settings, options: RunOptions) -> int:
    import asyncio
    import dataclasses

    from afetch._app import run
    from afetch._demo import DEMO_TIMEOUT, demo_source
    from afetch._loopback import LoopbackServer

    if settings.timeout == DEFAULT_TIMEOUT:
        # The demo's hanging URLs would keep it waiting for the default 30 s deadline (times
        # the retries); a short one shows the same outcome in seconds. --timeout still wins.
        settings = dataclasses.replace(settings, timeout=DEMO_TIMEOUT)
    with LoopbackServer() as server:
        source, total = demo_source(server)
        return asyncio.run(run(settings, options, urls=source, total=total))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: usage errors are one line on stderr and exit code 2."""
    cli = typer.main.get_command(app)
    try:
        with exit_on_signals():
            result = cli.main(args=argv, prog_name="afetch", standalone_mode=False)
    except _UsageError as exc:
        error_line(f"{exc.format_message()} (see afetch --help)")
        return EXIT_USAGE
    except _ClickException as exc:
        error_line(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        return 130
    return result if isinstance(result, int) else 0
