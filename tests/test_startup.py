"""Start-up stays light: --version, --help and usage errors load no engine and no Rich."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pycurl", "httpx", "aiohttp", "rich", "afetch._curl", "afetch._engine")

PROBE = """
import sys
from afetch.cli import main
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
