"""The README's nightly recipe, run for seven simulated nights as cron runs it.

Cron's environment: ``env -i PATH=...``, no terminal, stdin closed, the same line every night
in the same folder. A loopback server answers differently each night. The recipe must fetch
every night (a journal whose run finished starts a new run on ``--resume``), exit 1 on a night
with a failure and 0 otherwise, and a night stopped by SIGTERM is resumed the next night, whose
exit code answers for the URLs done before the stop too.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli_run import jsonl
from tests.helpers import serving

ROOT = Path(__file__).resolve().parent.parent
PAGES = 6
#: Night → {page: status}; every other page answers 200. Night 4 is stopped by SIGTERM while
#: pages 2-5 hang; night 5 resumes it.
ANSWERS = {2: {2: 404}, 4: {1: 404}, 7: {3: 500}}
HANGING_NIGHT = 4


def readme_recipe() -> list[str]:
    """The nightly line of README.md, as pasted."""
    lines = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("afetch ") and "--state run.state --resume" in line
    ]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


class _Nights:
    def __init__(self) -> None:
        self.night = 0
        self.hits: Counter[tuple[int, int]] = Counter()
        self.release = threading.Event()
        self.lock = threading.Lock()


@pytest.fixture
def nights() -> Iterator[tuple[_Nights, int]]:
    state = _Nights()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = int(self.path.rsplit("/", 1)[-1])
            with state.lock:
                night = state.night
                state.hits[night, page] += 1
            if night == HANGING_NIGHT and page >= 2:
                state.release.wait(60)
            status = ANSWERS.get(night, {}).get(page, 200)
            body = f"night {night} page {page}\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server):
        try:
            yield state, server.server_address[1]
        finally:
            state.release.set()


def _cron(folder: Path, args: list[str]) -> subprocess.Popen[bytes]:
    """Start the line as cron would: empty environment but PATH, stdin closed, no terminal."""
    command = shlex.join([sys.executable, "-m", "afetch", *args])
    return subprocess.Popen(
        ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", f"exec {command} <&-"],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal, as under cron
    )


def _written_and_hanging(state: _Nights, output: Path, written: list[str]) -> bool:
    with state.lock:
        hanging = all(state.hits[HANGING_NIGHT, page] == 1 for page in range(2, PAGES))
    text = output.read_text() if output.exists() else ""
    return hanging and sorted(line.split('"')[3] for line in text.splitlines()) == written


@pytest.mark.posix
def test_the_readme_nightly_recipe_for_seven_nights(
    tmp_path: Path, nights: tuple[_Nights, int]
) -> None:
    state, port = nights
    folder = tmp_path / "crawl"
    folder.mkdir()
    urls = [f"http://127.0.0.1:{port}/page/{i}" for i in range(PAGES)]
    (folder / "urls.txt").write_text("".join(f"{url}\n" for url in urls))
    args = readme_recipe()
    output = folder / args[args.index("-o") + 1]
    codes: dict[int, int] = {}
    stderr: dict[int, str] = {}
    for night in range(1, 8):
        with state.lock:
            state.night = night
        if night == HANGING_NIGHT + 1:
            state.release.set()  # the hung requests of the stopped night end; nobody reads them
        proc = _cron(folder, args)
        if night == HANGING_NIGHT:
            # Stop it once pages 0 and 1 are written (to the output it started afresh) and
            # pages 2-5 hang in flight.
            deadline = time.monotonic() + 30
            while not _written_and_hanging(state, output, urls[:2]):
                assert time.monotonic() < deadline, "night 4 never got under way"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert out == b""  # records go to -o
        codes[night], stderr[night] = proc.returncode, err.decode()
        records = jsonl(output.read_text())
        if night == HANGING_NIGHT:
            assert sorted(r["url"] for r in records) == urls[:2]
            continue
        # One record per URL: a new run truncates -o, a resumed one appends what was missing.
        assert sorted(r["url"] for r in records) == urls, night
        failed = {r["url"] for r in records if not r["ok"]}
        expected = ANSWERS.get(HANGING_NIGHT if night == HANGING_NIGHT + 1 else night, {})
        assert failed == {urls[page] for page in expected}, night

    # Exit codes: 1 on a night with a failure (night 5 answers for night 4's 404), 143 for
    # the stopped night, 0 otherwise.
    assert codes == {1: 0, 2: 1, 3: 0, 4: 143, 5: 1, 6: 0, 7: 1}, stderr
    # Every night fetched: all pages on a new run's night; night 5 only what night 4 left.
    for night in (1, 2, 3, 6, 7):
        assert [state.hits[night, page] for page in range(PAGES)] == [1] * PAGES, night
        assert "already done" not in stderr[night]
    assert [state.hits[HANGING_NIGHT + 1, page] for page in range(PAGES)] == [0, 0, 1, 1, 1, 1]
    assert "resuming: 2 URLs already done in run.state" in stderr[HANGING_NIGHT + 1]
    assert "earlier  2 already done, 1 ok, 1 not ok" in stderr[HANGING_NIGHT + 1]
    for night in (2, 3, 4, 6, 7):
        assert stderr[night].startswith(
            "afetch: run.state: previous run finished; starting a new run\n"
        ), night
