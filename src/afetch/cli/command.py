"""The ``afetch`` command: parses options with Typer and hands them to the async core.

The options themselves are declared once each, in :mod:`afetch.cli.options`.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

from afetch._settings import DEFAULT_TIMEOUT, Settings
from afetch.cli.names import COMPLETE_VAR
from afetch.cli.options import OPTIONS, SOURCES
from afetch.cli.usage import usage_message
from afetch.run.exits import EXIT_SIGINT, EXIT_USAGE, error_line
from afetch.run.signals import exit_on_signals

if TYPE_CHECKING:
    from afetch.run.options import RunOptions

EPILOG = """\
Examples:

  afetch urls.txt -c 50 > results.jsonl

  afetch urls.txt | jq -r 'select(.ok|not) | .url'

  grep -o 'https://[^ ]*' page.html | afetch - --timeout 5

  afetch --demo -c 50        (an offline run against a built-in loopback server)

Exit codes: 0 every URL ok, 1 some URL not ok (as --fail-on counts), 2 usage error,
74 records could not be written, 130 SIGINT, 143 SIGTERM, 129 SIGHUP, 141 output closed early.
"""

# Typer re-exports BadParameter; its bases are click's UsageError and ClickException, whether this
# Typer uses click itself or its own vendored copy of it.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


# -- --help -------------------------------------------------------------------------------------


_COL_MAX = 30  # click's default


class PanelCommand(TyperCommand):
    """Lists the options under their panels in plain text.

    Typer draws ``rich_help_panel`` only through rich, which ``--help`` must not import.
    """

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments = []
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panel = getattr(param, "rich_help_panel", None) or "Other"
                panels.setdefault(panel, []).append(record)
        # One width for the first column of every panel, so that they line up.
        rows = [arguments, *panels.values()]
        width = min(_COL_MAX, max(len(term) for records in rows for term, _ in records))
        for title, records in (("Arguments", arguments), *panels.items()):
            if records:
                with formatter.section(title):
                    formatter.write_dl(
                        [(term.ljust(width), text) for term, text in records], col_max=_COL_MAX
                    )


# -- the command --------------------------------------------------------------------------------

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(**params: Any) -> int:
    """Fetch URLs concurrently and write one JSON record per URL to stdout."""
    sources = _sources(params["sources"], demo=params["demo"])
    if params["resume"] and params["state"] is None:
        raise typer.BadParameter("needs --state FILE", param_hint="--resume")
    if params["history"] is None and (params["fail_on"] == "new" or params["fail_after"] > 1):
        # A URL's earlier runs are in the --history store only.
        hint = "--fail-on new" if params["fail_on"] == "new" else "--fail-after"
        raise typer.BadParameter("needs --history FILE", param_hint=hint)
    values = {spec.field: spec.value(params[spec.name]) for spec in OPTIONS}
    values["body"], values["body_kind"] = _body_options(
        values["data"], values["json"], stdin_is_input="-" in sources
    )
    settings = _settings(values)
    from afetch.cli.data import body_files
    from afetch.run.app import run
    from afetch.run.options import RunOptions

    values["reads"] = body_files([*(values["data"] or ()), *(values["json"] or ())])

    if values["progress"] is None:
        values["progress"] = not values["quiet"] and sys.stderr.isatty()
    options = RunOptions(sources=sources, **_fields_of(RunOptions, values))
    _collect_for_the_run()
    if values["demo"]:
        return _run_demo(settings, options)
    import asyncio  # here, not at the top: `afetch --version` need not pay for it

    return asyncio.run(run(settings, options))


def _collect_for_the_run() -> None:
    """What start-up made lives until exit: out of the collector's way. A run makes a few
    objects per URL and almost no cycles: young collections far less often than every 700
    allocations (CPython's default) is enough. The entry point had the collector off while
    afetch loaded (``cli.entry``): on from here."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    gc.enable()


command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [SOURCES, *(spec.parameter() for spec in OPTIONS)], return_annotation=int
)
app.command(cls=PanelCommand, epilog=EPILOG, no_args_is_help=False)(command)


def _fields_of(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of the dataclass ``cls``."""
    return {f.name: values[f.name] for f in fields(cls) if f.name in values}


def _sources(given: list[str] | None, *, demo: bool) -> tuple[str, ...]:
    sources = tuple(given or ())
    if demo and sources:
        raise typer.BadParameter("--demo takes no SOURCES", param_hint="SOURCES")
    if not sources and not demo:
        if sys.stdin is None or sys.stdin.isatty():
            raise typer.BadParameter(
                "no input: give a file of URLs, or pipe URLs to stdin", param_hint="SOURCES"
            )
        sources = ("-",)
    return sources


def _body_options(
    data: list[str] | None, json_body: list[str] | None, *, stdin_is_input: bool
) -> tuple[bytes | None, str]:
    """-d/--json, read once up front: a missing @FILE is a usage error, not an error per URL."""
    from afetch.cli.data import DataError, load_body

    if data and json_body:
        raise typer.BadParameter("give -d/--data or --json, not both", param_hint="'--json'")
    kind, values, option = ("json", json_body, "--json") if json_body else ("form", data, "-d")
    try:
        body = load_body(values or (), kind=kind, stdin_is_input=stdin_is_input, option=option)
    except DataError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None
    return body, kind


def _settings(values: dict[str, Any]) -> Settings:
    try:
        return Settings(**_fields_of(Settings, values))
    except ValueError as exc:
        # Ranges Typer cannot express (inf, say) are still one usage line, never a traceback.
        raise typer.BadParameter(str(exc)) from None


def _run_demo(settings: Settings, options: RunOptions) -> int:
    import asyncio
    import dataclasses

    from afetch._loopback import LoopbackServer
    from afetch.cli.demo import DEMO_TIMEOUT, demo_source
    from afetch.run.app import run

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
    if os.environ.get(COMPLETE_VAR):
        # Shell completion (docs/options.md): Typer's bash, zsh and fish scripts, loaded only
        # when the shell asks, so a run pays nothing for it and --help lists no extra options.
        from typer.completion import completion_init

        completion_init()
    try:
        with exit_on_signals():
            result = cli.main(args=argv, prog_name="afetch", standalone_mode=False)
    except _UsageError as exc:
        long_options = [name for p in cli.params for name in p.opts if name.startswith("--")]
        error_line(f"{usage_message(exc, long_options)} (see afetch --help)")
        return EXIT_USAGE
    except _ClickException as exc:
        error_line(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        return EXIT_SIGINT
    return result if isinstance(result, int) else 0
