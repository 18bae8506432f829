"""Every command README.md and docs/*.md give to paste runs, as written.

The commands come from the Markdown's code blocks (``sh``, ``bash``, ``console``), so a new recipe
is run by default. Each block runs in a fresh folder holding the files the recipes name
(``urls.txt``, ``sites.txt``, ``access.log``, ...), whose URLs are loopback servers'; ``afetch`` is
the one on this interpreter's PATH, HOME is the folder. A command passes when it exits 0 or 1 (1:
some URL was not ok) under ``pipefail``, with no traceback, no usage error and no jq error on
stderr. Commands that cannot run here are in :data:`SKIPPED`, each with its reason; an entry that
matches no command fails, so the list stays true.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from afetch._loopback import LoopbackServer
from tests.cli_run import cli_env
from tests.test_docs import DOCS, README, ROOT

PAGES = [README, *sorted(DOCS.glob("*.md"))]
BIN = Path(sys.executable).parent
#: Code block languages that hold commands to paste.
SHELL = {"sh", "bash", "console"}
#: Blocks that are not commands: data, code, output, other systems' formats.
NOT_COMMANDS = {
    "": "output, or the usage line",
    "json": "a record or a request object",
    "python": "code for the library (afetch.fetch), not a shell command",
    "yaml": "a Kubernetes manifest (needs a cluster); docs/watching.md's Prometheus rules and "
    "GitHub Actions job are checked by test_the_watching_page_recipes_run",
    "powershell": "Windows PowerShell",
    "markdown": "documentation text (a docs row to copy), not a command",
    "cron": "crontab entries, not commands to paste into a shell; docs/watching.md's run in "
    "test_the_watching_page_recipes_run",
}

#: A fragment of a command → why that command is not run here.
SKIPPED = {
    "pipx install": "installs from the package index",
    "pip install": "installs from the package index",
    "sh scripts/venv.sh": "installs from the package index; CI runs README's as written "
    "(.ci/readme-command)",
    ".venv/bin/python -m pytest": "the test suite itself",
    ".venv/bin/ruff": "lints the checkout; .ci/run runs it",
    "bash .ci/run": "CI's own script",
    "python -m build": "builds the package; CI's package job does",
    "twine check": "checks built packages; CI's package job does",
    "docker ": "needs a container engine; CI's container job builds and runs the image",
    "apt-get install": "installs system packages",
    "python bench/": "a benchmark: minutes of the machine",
    "git archive": "exports a tree from the checkout's history, for a benchmark",
    "/out/afetch-nightly/": "reads a Kubernetes Job's volume",
    "parallel -j": "GNU parallel is not a test dependency",
}

#: Text in a recipe → what the test puts there instead (hosts that must not be looked up).
SUBSTITUTIONS = {
    "localhost:8443": "localhost:{tls_port}",
    "@proxy:3128": "@127.0.0.1:{closed_port}",
    "/var/lib/probe/": "var/lib/probe/",
    ".venv/bin/afetch": "afetch",
    # The same options at a pace a test can wait for: urls.txt holds six URLs of one host, five
    # seconds at one a second. That the rate is kept is test_scheduling's (on the fake clock).
    "--host-rate 1 ": "--host-rate 20 ",
    # Half a minute's pause before --confirm tries the failures again, and a retry's backoff
    # doubled from a second (up to 15 s for a URL that fails five times); see PACE.
    "--confirm-delay 30 ": "--confirm-delay 0.2 ",
    "--backoff 1 ": "--backoff 0.02 ",
}

#: The pauses the recipes' runs take by default, shortened through the environment (the
#: documented AFETCH_* variables; a recipe's own flag still wins): a retry's backoff (up to
#: 0.5 s, then 1 s, per failing URL of urls.txt) and --confirm's 5 s. What the pauses do is
#: tested on the fake clock (test_retry_policy, test_confirm); here, that the commands run.
PACE = {"AFETCH_BACKOFF": "0.02", "AFETCH_CONFIRM_DELAY": "0.2"}

#: A fragment of a command → text its stdout must hold: recipes whose output is the point.
EXPECTED = {
    # Both kinds of failure, an HTTP status and a transport error, counted.
    "| sort | uniq -c": ("1 http_404\n", "1 protocol\n"),
    "select(.ok|not) | .url": ("/status/404\n", "/garbage\n"),
    "select(.ok and .attempts > 1)": ("/flaky/",),
}


@dataclass(frozen=True)
class Block:
    """The commands of one code block, run in order in one folder."""

    page: str
    line: int
    commands: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def code_blocks(page: Path) -> Iterator[tuple[int, str, str]]:
    """(line of the opening fence, language, body) of each fenced block."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        if line.startswith("```") and start is None:
            start, lang, body = number, line[3:].strip(), []
        elif line.startswith("```"):
            yield start, lang, "\n".join(body)
            start = None
        elif start is not None:
            body.append(line)


def blocks(page: Path) -> Iterator[Block]:
    """A page's shell blocks as commands: continuation lines (``\\``, an open quote, a leading
    ``|``) joined; comment lines and, in ``console`` blocks, output left out."""
    name = page.relative_to(ROOT).as_posix()
    for start, lang, body in code_blocks(page):
        if lang not in SHELL:
            assert lang in NOT_COMMANDS, f"{name}:{start}: a ```{lang} block: run it or say why not"
            continue
        found: list[str] = []
        current: list[str] = []
        for raw in body.splitlines():
            line = raw
            if lang == "console" and not current:
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if not current and line.lstrip().startswith("|") and found:
                current = [found.pop()]  # a pipe on the next line continues the command
            current.append(line)
            code = re.sub(r"\s+# .*$", "", "\n".join(current), flags=re.M)  # comments' quotes
            if code.endswith("\\") or code.count("'") % 2:
                continue
            found.append("\n".join(current))
            current = []
        assert not current, f"{name}:{start}: a command that never ends"
        if found:
            yield Block(name, start, tuple(found))


ALL = [block for page in PAGES for block in blocks(page)]
COMMANDS = [command for block in ALL for command in block.commands]


def skip_reason(command: str) -> str | None:
    return next((why for fragment, why in SKIPPED.items() if fragment in command), None)


def test_the_recipe_lists_are_true() -> None:
    assert len(COMMANDS) > 80, "the extraction finds too few commands"
    for fragment in [*SKIPPED, *SUBSTITUTIONS, *EXPECTED]:
        assert any(fragment in command for command in COMMANDS), f"{fragment!r} matches nothing"
    run = [command for command in COMMANDS if skip_reason(command) is None]
    assert len(run) > 50, "most recipes must run"


# -- the folder the recipes run in --------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    plain: LoopbackServer
    #: https, its certificate from ``ca_pem`` (not trusted unless a recipe says --cacert).
    tls: LoopbackServer
    ca_pem: Path
    #: A loopback port nothing listens on, for hosts the recipes name that must not be looked up.
    closed_port: int
    #: What earlier steps of a workflow leave behind (``out.jsonl``, ``results.jsonl``): one
    #: run's records of other URLs, made once for the module (see :func:`earlier_records`).
    earlier: bytes
    #: What earlier steps of a workflow leave behind (``out.jsonl``, ``results.jsonl``): one
    #: run's records of other URLs, made once for the module (see :func:`earlier_records`).
    earlier: bytes


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    with LoopbackServer() as plain, LoopbackServer(ssl=context) as tls:
        closed = LoopbackServer()  # a port nothing listens on: started, then stopped
        closed.start()
        closed.stop()
        earlier = earlier_records(plain, tmp_path_factory.mktemp("earlier"))
        yield Servers(plain, tls, ca_pem, closed.port, earlier)


def some_urls(plain: LoopbackServer, key: str) -> list[str]:
    """``urls.txt``: a redirect, a 404, a broken response, a flaky URL, a page, an ETag."""
    paths = ["/redirect/2", "/status/404", "/garbage", f"/flaky/{key}/1", "/page?title=Hello"]
    return [plain.url(path) for path in [*paths, f"/etag/{key}"]]


def earlier_records(plain: LoopbackServer, folder: Path) -> bytes:
    """The records of an earlier run, of URLs no block's ``urls.txt`` holds. Made once, not per
    block (a process less for each): the recipes only read them or fetch their URLs again, and
    pass on either exit code, so the blocks need no copy of their own."""
    urls = some_urls(plain, "earlier")
    records = subprocess.run(
        [str(BIN / "afetch"), "-", "-q", "--retries", "0"],
        input="".join(f"{url}\n" for url in urls).encode(),
        cwd=folder,
        capture_output=True,
        env=cli_env(),
        timeout=60,
        check=False,
    ).stdout
    assert records.count(b"\n") == len(urls), records
    return records


def prepare(folder: Path, servers: Servers, key: str) -> None:
    """The files the recipes name. ``key`` keeps the server's per-URL state (a flaky URL's
    failures, an ETag) apart between blocks."""
    plain, tls = servers.plain, servers.tls
    urls = some_urls(plain, key)
    files = {
        "urls.txt": urls,
        # The TLS server's certificate is not trusted without --cacert: a `tls` error.
        "sites.txt": [tls.url("/ok"), plain.url("/ok")],
        "api-urls.txt": [plain.url("/headers")],
        # docs/include.md's soft-404 recipe: pages and a real 404 on one host.
        "links.txt": [plain.url("/page?title=Hello"), plain.url("/status/404"), plain.url("/ok")],
        "feeds.txt": [plain.url(f"/etag/feed-{key}"), plain.url(f"/last-modified/{key}?t=1e9")],
        "access.log": [f'127.0.0.1 - - "GET {url} HTTP/1.1" 200' for url in urls[:3]],
    }
    for name, lines in files.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    (folder / "payload.json").write_text('{"state": "archived"}\n', encoding="utf-8")
    shutil.copy(servers.ca_pem, folder / "ca.pem")
    (folder / "var" / "lib" / "probe").mkdir(parents=True)
    for name in ("out.jsonl", "results.jsonl"):
        (folder / name).write_bytes(servers.earlier)


def shell_text(command: str, servers: Servers) -> str:
    values = {"tls_port": servers.tls.port, "closed_port": servers.closed_port}
    for old, new in SUBSTITUTIONS.items():
        command = command.replace(old, new.format(**values))
    return command


@pytest.mark.skipif(sys.platform == "win32", reason="the recipes are POSIX shell")
@pytest.mark.skipif(not (BIN / "afetch").exists(), reason="afetch is not installed beside python")
@pytest.mark.parametrize("block", ALL, ids=[block.id for block in ALL])
def test_the_recipe_runs_unchanged(block: Block, servers: Servers, tmp_path: Path) -> None:
    reasons = [skip_reason(command) for command in block.commands]
    if all(reasons):
        pytest.skip("; ".join(sorted(set(filter(None, reasons)))))
    prepare(tmp_path, servers, key=re.sub(r"\W", "-", block.id))
    env = cli_env(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "TOKEN": "not-a-secret",
            **PACE,
        }
    )
    for command, reason in zip(block.commands, reasons, strict=True):
        if reason is not None:
            continue
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", shell_text(command, servers)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        shown = f"{command}\n--- stdout\n{result.stdout[-2000:]}--- stderr\n{result.stderr[-2000:]}"
        allowed = {0, 1} | ({141} if "| head" in command else set())
        assert result.returncode in allowed, shown
        for sign in ("Traceback", "afetch: error:", "jq: error", "command not found"):
            assert sign not in result.stderr, shown
        for fragment, texts in EXPECTED.items():
            if fragment in command:
                assert all(text in result.stdout for text in texts), shown


# -- docs/watching.md: a crontab line, Prometheus alert rules, a GitHub Actions job -------------

WATCHING = ROOT / "docs" / "watching.md"
_CRON_FIELD = re.compile(r"^(\*|\d+)([-,/]\d+)*(/\d+)?$|^\*/\d+$")


def _crontab_commands() -> list[str]:
    """The commands of the page's crontab entries, as cron hands them to sh (``\\%`` is ``%``)."""
    commands = []
    for _, lang, body in code_blocks(WATCHING):
        for line in body.splitlines() if lang == "cron" else ():
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split(None, 5)
            assert len(fields) == 6, f"not a crontab entry: {line}"
            assert all(_CRON_FIELD.match(field) for field in fields[:5]), line
            commands.append(fields[5].replace("\\%", "%"))
    return commands


def _yaml_blocks() -> list[Any]:
    yaml = pytest.importorskip("yaml")
    return [yaml.safe_load(body) for _, lang, body in code_blocks(WATCHING) if lang == "yaml"]


@pytest.mark.skipif(sys.platform == "win32", reason="the recipes are POSIX shell")
@pytest.mark.skipif(not (BIN / "afetch").exists(), reason="afetch is not installed beside python")
def test_the_watching_page_recipes_run(servers: Servers, tmp_path: Path) -> None:
    """The crontab line runs (as cron would: sh, \\% unescaped) and leaves a Prometheus textfile
    every alert rule's metrics are in; the GitHub Actions job parses and its afetch steps run
    under GITHUB_ACTIONS=true, filling the job summary and the reports it uploads."""
    parser = pytest.importorskip("prometheus_client.parser")
    env = cli_env(
        {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(tmp_path), **PACE}
    )
    srv, textfiles = tmp_path / "srv" / "afetch", tmp_path / "textfile_collector"
    srv.mkdir(parents=True)
    prepare(srv, servers, key="watching-cron")
    crontab = _crontab_commands()
    assert crontab, "docs/watching.md has no crontab entry"
    for command in crontab:
        command = command.replace("/srv/afetch", str(srv))
        command = command.replace("/var/lib/node_exporter/textfile_collector", str(textfiles))
        done = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode in (0, 1), done.stderr
        assert done.stderr == "", done.stderr  # -q: cron mails nothing for a run that worked
    (prom,) = textfiles.glob("*.prom")
    families = {f.name for f in parser.text_string_to_metric_families(prom.read_text())}
    assert (srv / "last.md").read_text().startswith("## afetch: ")

    blocks = _yaml_blocks()
    rules = [
        rule
        for block in blocks
        if "groups" in block
        for g in block["groups"]
        for rule in g["rules"]
    ]
    jobs = [job for block in blocks if "jobs" in block for job in block["jobs"].values()]
    assert len(blocks) == 2, "docs/watching.md: one rules file, one workflow"
    assert rules
    assert jobs
    for rule in rules:
        assert {"alert", "expr"} <= set(rule), rule
        names = set(re.findall(r"\bafetch_[a-z_]+", rule["expr"]))
        assert names, rule["alert"]
        assert names <= families, (rule["alert"], names - families)
        assert "$labels.run" in rule["annotations"]["summary"]  # the label every sample has

    folder = tmp_path / "checkout"
    folder.mkdir()
    prepare(folder, servers, key="watching-actions")
    step_summary = tmp_path / "step_summary.md"
    github = {**env, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step_summary)}
    steps = [step["run"] for job in jobs for step in job["steps"] if "run" in step]
    afetch_steps = [run for run in steps if run.startswith("afetch ")]
    assert afetch_steps
    assert all(skip_reason(run) for run in steps if run not in afetch_steps)
    for run in afetch_steps:
        done = subprocess.run(
            ["bash", "-e", "-c", run],
            cwd=folder,
            capture_output=True,
            text=True,
            env=github,
            timeout=120,
        )
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr
        assert "afetch: error" not in done.stderr
        if done.returncode == 1:
            assert "::error title=afetch" in done.stderr
    assert step_summary.read_text().startswith("## afetch: ")
    uploaded = [s["with"]["path"] for job in jobs for s in job["steps"] if "with" in s]
    for path in uploaded:
        assert any((folder / path).iterdir()), f"{path}: nothing to upload"
