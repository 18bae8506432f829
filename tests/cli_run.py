"""Running the real ``afetch`` command as a subprocess (shared by the cron-feature tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def afetch_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "afetch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def jsonl(text: str) -> list[dict[str, Any]]:
    assert text == "" or text.endswith("\n"), "output ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]
