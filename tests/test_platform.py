"""What keeps afetch working where POSIX is missing (Windows), tested here on any system.

The Windows code paths are chosen by what the platform has, so they run on Linux too when the
POSIX feature is taken away: no ``fcntl``, no ``O_NOFOLLOW``/``openat``, no loop signal handlers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import afetch.attempt.save
import afetch.run.interrupt
import afetch.run.prepare
from afetch._loopback import LoopbackServer
from afetch.attempt.save import file_name
from tests.helpers import collect

WITHOUT_POSIX = """
import os, sys
sys.modules["fcntl"] = None  # import fcntl raises ImportError, as on Windows
for name in ("O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC"):
    delattr(os, name)
os.supports_dir_fd = set()
import pkgutil, importlib, afetch
for module in pkgutil.iter_modules(afetch.__path__):
    if module.name != "__main__":
        importlib.import_module("afetch." + module.name)
import afetch.run.prepare, afetch.attempt.save
assert afetch.run.prepare.fcntl is None and afetch.attempt.save._OPENAT is False
print("imported")
"""


def test_the_source_imports_without_posix_only_names() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_without_fcntl_the_stdout_check_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(afetch.run.prepare, "fcntl", None)
    prepare = afetch.run.prepare
    options = prepare.RunOptions(sources=())
    assert prepare._output_problem(prepare.Settings(), options, [], []) is None


@pytest.fixture
def by_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """--save-dir as on Windows: files made by path, the host folder checked for a symlink."""
    monkeypatch.setattr(afetch.attempt.save, "_OPENAT", False)


@pytest.mark.usefixtures("by_path")
def test_by_path_a_body_is_saved_whole_and_replaces_an_older_one(
    tmp_path: Path, server: LoopbackServer
) -> None:
    url = server.url("/ok?size=300000")
    (first,) = collect([url], save_dir=str(tmp_path))
    (second,) = collect([url], save_dir=str(tmp_path))
    assert first.path == second.path == os.path.join(str(tmp_path), *file_name(url))
    assert Path(second.path).read_bytes() == b"x" * 300_000
    assert [p.name for p in Path(second.path).parent.iterdir()] == [Path(second.path).name]


@pytest.mark.usefixtures("by_path")
def test_by_path_a_failed_download_leaves_no_file(tmp_path: Path, server: LoopbackServer) -> None:
    (record,) = collect([server.url("/truncate")], save_dir=str(tmp_path))
    assert record.error is not None
    assert record.error.type == "protocol"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.posix
@pytest.mark.usefixtures("by_path")
def test_by_path_a_symlinked_host_folder_is_refused(tmp_path: Path, server: LoopbackServer) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    url = server.url("/ok?size=10")
    (out / file_name(url)[0]).symlink_to(outside)
    (record,) = collect([url], save_dir=str(out))
    assert record.error is not None
    assert record.error.type == "save"
    assert list(outside.iterdir()) == []


@pytest.mark.posix
def test_without_loop_signal_handlers_a_signal_still_stops_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Windows' event loops have no add_signal_handler: a plain handler must wake the loop.
    def unsupported(*args: object) -> None:
        raise NotImplementedError

    async def interrupted() -> int | None:
        monkeypatch.setattr(asyncio.get_running_loop(), "add_signal_handler", unsupported)
        with afetch.run.interrupt.Interrupt() as interrupt:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(interrupt.stop.wait(), timeout=10)
        return interrupt.signum

    before = signal.getsignal(signal.SIGTERM)
    assert asyncio.run(interrupted()) == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back
