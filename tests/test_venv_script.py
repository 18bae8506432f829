"""scripts/venv.sh tells what it is doing in one line per step, not pip's output, unless pip fails.

The script runs on a copy of the checkout's pyproject.toml whose `.venv` holds a stand-in python:
it records how pip was called and prints what pip would, so nothing is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script")

NOISE = "Looking in indexes: ... Collecting httpx ... Successfully installed"


def checkout(folder: Path, *, pip_exit: int) -> Path:
    (folder / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "venv.sh", folder / "scripts" / "venv.sh")
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(
        f'#!/bin/sh\necho "$@" >> "{folder}/pip-calls"\n'
        f'echo "{NOISE}"\necho "WARNING: {NOISE}" >&2\nexit {pip_exit}\n'
    )
    python.chmod(0o755)
    return folder


def venv_sh(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "scripts/venv.sh", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_install_is_one_line_saying_what_then_done(tmp_path: Path) -> None:
    folder = checkout(tmp_path, pip_exit=0)
    result = venv_sh(folder, "test")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "scripts/venv.sh: installing afetch with [test] and its dependencies into .venv "
        "(pip; about half a minute)",
        "scripts/venv.sh: done: afetch is installed in .venv",
    ]
    assert (
        "install --quiet --disable-pip-version-check -e .[test]"
        in (folder / "pip-calls").read_text()
    )
    # Up to date: nothing to say, nothing installed.
    again = venv_sh(folder, "test")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len((folder / "pip-calls").read_text().splitlines()) == 1


def test_a_failed_install_shows_what_pip_said(tmp_path: Path) -> None:
    folder = checkout(tmp_path, pip_exit=1)
    result = venv_sh(folder)
    assert result.returncode == 1
    assert NOISE in result.stderr
    assert result.stderr.rstrip().endswith(
        "scripts/venv.sh: pip install failed (its output is above and in .venv/.afetch-pip.log)"
    )
    assert not (folder / ".venv" / ".afetch-installed").exists()
