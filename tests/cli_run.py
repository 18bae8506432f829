"""Running the real ``afetch`` command as a subprocess: shared by every CLI test module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without AFETCH_* settings or proxy variables
    (``*_proxy``) a developer may have exported, nor GitHub Actions' (a run under it writes
    the job summary and annotations: the suite's own runs must not)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AFETCH_", "GITHUB_")) and not key.lower().endswith("_proxy")
    }
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(extra or {})}


def afetch_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m afetch ARGS`` to completion; no stdin unless ``stdin`` is given."""
    return subprocess.run(
        [sys.executable, "-m", "afetch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def jsonl(text: str | bytes) -> list[dict[str, Any]]:
    """Parse output strictly: complete JSON lines and nothing else."""
    if isinstance(text, bytes):
        text = text.decode()
    assert text == "" or text.endswith("\n"), "output ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]
