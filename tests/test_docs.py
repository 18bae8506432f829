"""The documentation describes the code that exists, all of it.

Every option and its environment variable, every error type, exit code and record key must be in
docs/ (README.md is the short front door, docs/ the reference); every long option the docs name
must exist. The lists come from the code, so a new option, key, error type or exit code fails
here until it is documented.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

import afetch.cli.command
import afetch.run.exits
import afetch.run.signals
from afetch._errors import ERROR_TYPES
from afetch._include import NAMES as INCLUDE_NAMES
from afetch._include import RECORD_KEYS as INCLUDE_KEYS
from afetch._loopback import LoopbackServer
from afetch._record import OPTIONAL_KEYS, SCHEMA_KEYS, WATCH_KEYS
from tests.cli_run import afetch_cli, jsonl

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RECORDS = DOCS / "records.md"

#: Long options of other tools that the docs quote, by tool. Anything else that looks like
#: `--name` in README.md or docs/ must be an afetch option.
OTHER_TOOLS_OPTIONS = {
    "curl": {
        "--parallel",
        "--data-binary",
        "--parallel-max",
        "--retry",
        "--retry-max-time",
        "--max-filesize",
        "--http3-only",
    },
    "wget2": {"--max-threads", "--ca-certificate", "--tries", "--read-timeout"},
    "slurm sbatch": {"--array"},
    "bench/run.py": {
        "--variants",
        "--only",
        "--quick",
        "--compare",
        "--runs",
        "--httpx-runs",
        "--many-urls",
        "--many-runs",
        "--engines",
        "--afetch-shards",
        "--no-uvloop-script",
        # The internet-like lab (bench/lab.py).
        "--internet-urls",
        "--internet-names",
        "--internet-concurrency",
        "--internet-runs",
        "--lab-seed",
        "--lab-dead-share",
        "--lab-drip-share",
        "--lab-dns-loss",
        "--lab-dns-p50-ms",
        "--lab-servers",
        # afetch alone at -c 10,000 in the lab (bench/lab_c10k.py).
        "--c10k-urls",
        "--c10k-names",
        "--c10k-concurrency",
        "--c10k-nofile",
        "--c10k-keep",
    },
    "valgrind": {"--tool"},
    "pytest (docs/development.md)": {"--dist", "--pdb"},
    "bench/engines/curl_multi.py": {"--idle-reader", "--own-epoll"},
    "bench/output_cost.py": {"--micro", "--records", "--work-us", "--before"},
    "bench/lab_reuse.py": {"--names", "--urls", "--clean", "--variant", "--dns-p50-ms"},
    "bench/progress_cost.py": {"--rounds"},
    "bench/dns_scale.py": {"--names"},
    "bench/cron_overhead.py, bench/history_store.py": {"--repeat", "--urls", "--src"},
    "bench/instructions.py": {"--tree", "--mode", "--minus"},
    "ruff format": {"--check"},
    "python -m venv": {"--without-pip"},
    "pip": {"--no-deps", "--upgrade", "--user"},
    "python -m build": {"--sdist", "--wheel", "--outdir"},
    "twine": {"--strict"},
    "docker": {"--rm", "--network", "--tag", "--volume"},
}
_LONG_OPTION = re.compile(r"(?<![\w/-])--[a-z][a-z0-9-]*")


@cache
def docs_text() -> str:
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def mentions(text: str, token: str) -> bool:
    """``token`` as a whole word or option (``--rate`` does not count inside ``--host-rate``)."""
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def table_rows(text: str, heading: str) -> set[str]:
    """The first cells of the table under ``heading`` (backticks stripped)."""
    section = text.split(f"\n{heading}\n", 1)
    assert len(section) == 2, f"no section {heading!r}"
    rows = set()
    for line in section[1].split("\n#", 1)[0].splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.add(line.split("|")[1].strip().strip("`"))
    return rows


def table_column(text: str, heading: str) -> list[str]:
    """The first cells of the rows of the table under ``heading``, header row left out, in order
    and with repeats (backticks stripped)."""
    section = text.split(f"\n{heading}\n", 1)
    assert len(section) == 2, f"no section {heading!r}"
    lines = [line for line in section[1].split("\n#", 1)[0].splitlines() if line.startswith("|")]
    return [line.split("|")[1].strip().strip("`") for line in lines[2:]]


def cli_params() -> list[Any]:
    # click's Parameter objects (Typer's own click, vendored or not).
    command = typer.main.get_command(afetch.cli.command.app)
    context = command.make_context("afetch", [], resilient_parsing=True)
    return command.get_params(context)


def cli_options() -> list[str]:
    names = []
    for param in cli_params():
        # Sorted: click keeps --help's names in a set, and xdist's workers must collect one order.
        names += sorted(n for n in (*param.opts, *param.secondary_opts) if n.startswith("-"))
    return names


def cli_envvars() -> list[str]:
    envvars = []
    for param in cli_params():
        value = getattr(param, "envvar", None)
        envvars += [value] if isinstance(value, str) else list(value or ())
    return envvars


def exit_codes() -> set[int]:
    codes = set(afetch.run.signals.SIGNAL_EXITS.values())
    for module in (afetch.run.exits, afetch.cli.command):
        codes |= {v for k, v in vars(module).items() if k.startswith("EXIT_") and type(v) is int}
    return codes


def test_the_lists_from_the_code_are_not_empty() -> None:
    # A refactoring that hides the options or the constants must not make every test pass.
    assert {"--concurrency", "--no-follow", "-h", "--help", "--version"} <= set(cli_options())
    assert "AFETCH_CONCURRENCY" in cli_envvars()
    assert {0, 1, 2, 74, 130, 141, 143} <= exit_codes()
    assert "timeout" in ERROR_TYPES
    assert "url" in SCHEMA_KEYS


@pytest.mark.parametrize("option", cli_options())
def test_every_option_has_a_row_in_the_options_table(option: str) -> None:
    rows = table_rows((DOCS / "options.md").read_text(encoding="utf-8"), "# Options")
    assert any(mentions(row, option) for row in rows), (
        f"{option} is an afetch option but the table in docs/options.md has no row for it"
    )


@pytest.mark.parametrize("envvar", cli_envvars())
def test_every_environment_variable_is_in_the_options_page(envvar: str) -> None:
    rows = table_rows((DOCS / "options.md").read_text(encoding="utf-8"), "## Environment variables")
    assert envvar in rows, f"{envvar} is missing from the table in docs/options.md"


@pytest.mark.parametrize("error_type", ERROR_TYPES)
def test_every_error_type_is_in_the_records_page(error_type: str) -> None:
    rows = table_rows(RECORDS.read_text(encoding="utf-8"), "## Error types")
    assert error_type in rows, f"error type {error_type} is missing from docs/records.md"


def test_the_error_types_table_has_one_row_per_error_type_and_no_other() -> None:
    # ErrorType (afetch._errors) is the one table of error types and their traits; the page
    # documents each exactly once, and nothing the code does not have.
    rows = table_column(RECORDS.read_text(encoding="utf-8"), "## Error types")
    assert sorted(rows) == sorted(ERROR_TYPES)


@pytest.mark.parametrize("key", SCHEMA_KEYS + OPTIONAL_KEYS + WATCH_KEYS)
def test_every_record_key_is_in_the_records_page(key: str) -> None:
    # The included keys are in docs/include.md (see the test below), linked from there.
    rows = table_rows(RECORDS.read_text(encoding="utf-8"), "# Records")
    assert key in rows, f"record key {key} is missing from the tables in docs/records.md"


def _backticked(line: str) -> list[str]:
    return re.findall(r"`([^`]+)`", line)


def test_the_include_table_and_its_page_have_the_same_keys() -> None:
    # INCLUDE (afetch._include) is the one table of --include keys, and the table in
    # docs/include.md the one place the docs list them: each key exactly once, in record order,
    # and nothing the code lacks. --help's list of names agrees too.
    page = (DOCS / "include.md").read_text(encoding="utf-8")
    assert table_column(page, "# More in each record: `--include`") == list(INCLUDE_KEYS)
    (option,) = [p for p in cli_params() if "--include" in p.opts]
    listed = option.help.rsplit(":", 1)[1].strip().rstrip(".")
    assert listed.split(", ") == list(INCLUDE_NAMES)


@pytest.mark.parametrize("key", SCHEMA_KEYS)
def test_every_schema_key_is_in_the_readme(key: str) -> None:
    assert key in table_rows(README.read_text(encoding="utf-8"), "## Records")


@pytest.mark.parametrize("code", sorted(exit_codes()))
def test_every_exit_code_is_in_the_readme_and_the_records_page(code: int) -> None:
    for page in (README, RECORDS):
        rows = table_rows(page.read_text(encoding="utf-8"), "## Exit codes")
        assert str(code) in rows, f"exit code {code} is missing from {page.relative_to(ROOT)}"


def test_every_long_option_the_docs_name_exists() -> None:
    known = set(cli_options()).union(*OTHER_TOOLS_OPTIONS.values())
    unknown = {}
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for option in _LONG_OPTION.findall(page.read_text(encoding="utf-8")):
            if option not in known:
                unknown.setdefault(option, page.relative_to(ROOT).as_posix())
    # Another tool's flag quoted on purpose goes into OTHER_TOOLS_OPTIONS.
    assert not unknown, f"not afetch options: {unknown}"


def test_relative_links_lead_to_files_that_exist() -> None:
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken


def repository_url() -> str:
    """The repository's URL, defined once: pyproject.toml's [project.urls] Source."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        urls = tomllib.load(handle)["project"]["urls"]
    assert all(url.startswith(urls["Source"]) for url in urls.values()), "one repository URL"
    return urls["Source"]


def test_the_readme_links_work_on_the_package_page() -> None:
    """README.md is the package's long description, shown where relative links lead nowhere: its
    links are absolute, and those into the repository name files that exist on main."""
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, "README.md has no links: the pattern is wrong"
    relative = [link for link in links if "://" not in link]
    assert not relative, f"relative links in README.md break on the package page: {relative}"
    prefix = repository_url() + "/blob/main/"
    missing = []
    for link in links:
        if link.startswith(repository_url()) and not link.startswith(prefix):
            missing.append(link)  # another form of the repository's URL: one form only
        elif link.startswith(prefix) and not (ROOT / link[len(prefix) :].split("#")[0]).exists():
            missing.append(link)
    assert not missing, f"links into the repository that name no file: {missing}"


def test_the_readme_stays_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "README.md is the front door: details go to docs/"
    # .ci/run runs the test command; CI's debian job runs both, as written (.ci/readme-command).
    assert "<!-- test-command -->" in text
    assert "<!-- demo-command -->" in text


LATEST_RUN = ROOT / "bench" / "results" / "latest.md"
#: README's Performance columns, and how bench/run.py names each tool in its tables.
_README_TOOLS = {
    "afetch": "afetch",
    "aiohttp `gather` script": "aiohttp script",
    "`curl --parallel`": "curl --parallel",
    "wget2": "wget2",
}


def _latest_walls() -> list[dict[str, str]]:
    """Median wall seconds by tool, for each comparison table of the latest benchmark run (its
    first three: throughput, latency-bound, many hosts), tools named as in the table without a
    parenthesised concurrency."""
    tables: list[dict[str, str]] = []
    for block in LATEST_RUN.read_text(encoding="utf-8").split("\n### ")[1:]:
        lines = [line for line in block.splitlines() if line.startswith("| ")]
        if not lines or not lines[0].startswith("| tool |"):
            continue
        walls = {}
        for line in lines[1:]:
            tool, wall = (cell.strip() for cell in line.strip("|").split("|")[:2])
            walls[tool.split(" (")[0]] = wall
        tables.append(walls)
    return tables[:3]


def test_the_readme_performance_figures_are_the_latest_run() -> None:
    """README's wall times are bench/results/latest.md's, so a new run updates both."""
    text = README.read_text(encoding="utf-8").split("\n## Performance\n", 1)[1].split("\n## ")[0]
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")][1:]
    rows = [[cell.strip() for cell in line.strip("|").split("|")][1:] for line in table[2:5]]
    for row, walls in zip(rows, _latest_walls(), strict=True):
        for column, cell in zip(header, row, strict=True):
            assert cell == f"{walls[_README_TOOLS[column]]} s", (column, cell)


def test_the_readme_performance_section_is_for_users() -> None:
    """A table against other tools and a few lines: the engine's internals are in
    docs/performance.md, which the section links to."""
    text = README.read_text(encoding="utf-8").split("\n## Performance\n", 1)[1].split("\n## ")[0]
    assert len(text.strip().splitlines()) <= 15
    assert "docs/performance.md" in text
    for internal in ("epoll", "uvloop", "bake-off", "libcurl", "idle"):
        assert internal not in text, f"{internal!r}: engine internals go to docs/performance.md"


def test_elapsed_ms_is_what_the_records_page_says(server: LoopbackServer) -> None:
    """docs/records.md: from the attempt's start to its complete record, so never less than
    libcurl's timings.total, which counts the final request alone (redirects make the gap)."""
    assert "a little more than `timings.total`" in RECORDS.read_text(encoding="utf-8")
    urls = [server.url(path) for path in ("/ok", "/redirect/3", "/sleep/50", "/status/404")]
    result = afetch_cli("-", "-q", "--include", "timings", stdin="".join(f"{u}\n" for u in urls))
    records = jsonl(result.stdout)
    assert len(records) == len(urls)
    for record in records:
        assert record["elapsed_ms"] >= record["timings"]["total"], record
    redirected = next(r for r in records if r["redirects"] == 3)
    assert redirected["elapsed_ms"] > redirected["timings"]["total"]


def _layout_rows() -> list[tuple[list[str], str]]:
    """development.md's "package or module | concern" table: (names in the first cell, the rest)."""
    text = (DOCS / "development.md").read_text()
    table = text.split("| package or module | concern |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        first, _, rest = line.strip("|").partition("|")
        rows.append((re.findall(r"`([^`]+)`", first), rest))
    return rows


def test_the_source_layout_table_names_every_room_and_only_rooms_that_exist() -> None:
    package = ROOT / "src" / "afetch"
    named = {name.rstrip("/") for names, _ in _layout_rows() for name in names}
    rooms = {
        path.stem if path.is_file() else path.name
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__main__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert named == rooms, (named - rooms, rooms - named)
