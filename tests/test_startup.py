"""Start-up stays light: --version, --help and usage errors load no engine and no Rich."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pycurl", "httpx", "aiohttp", "rich", "afetch.engine.curl", "afetch.engine.base")

PROBE = """
import sys
from afetch.cli.command import main
try:
    code = main({argv!r})
except SystemExit as exit:
    code = exit.code
print(sorted(name for name in {heavy!r} if name in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["--no-such-flag"], ["-c", "0"]])
def test_no_engine_is_imported(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_a_run_to_a_log_loads_only_the_engine(tmp_path) -> None:
    """A run on libcurl whose stderr is a file (cron, a pipe) loads neither httpx (the adapter),
    Rich (terminal only), pydantic (Typer >= 0.29 converts options through it), sqlite3
    (--cache), hashlib (--state, --shard, --hash, request objects), certifi's module (its
    bundle is found without it) nor email.utils (an HTTP-date Retry-After)."""
    urls = tmp_path / "urls.txt"
    # Refused at once (port 9 on loopback): no server needed, and the record is still written.
    urls.write_text("http://127.0.0.1:9/\n")
    probe = PROBE.format(
        argv=[str(urls), "--retries", "0"],
        heavy=(*HEAVY, "pydantic", "sqlite3", "hashlib", "certifi", "email.utils"),
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "afetch: summary" in done.stderr  # the plain summary, without Rich
    assert (
        done.stdout.strip().splitlines()[-1]
        == "['afetch.engine.base', 'afetch.engine.curl', 'pycurl']"
    ), done.stdout + done.stderr
