"""--state/--resume: a journal that survives kill -9, and a resumed run that finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afetch._loopback import LoopbackServer
from afetch.input.journal import Journal, load_done, url_key
from tests.cli_run import afetch_cli, cli_env, jsonl


def test_a_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_bytes(b"http://127.0.0.1/a\nhttp://127.0.0.1/b\nhttp://127.0.0.1/c-torn")
    done = load_done(str(state))
    assert done == {url_key("http://127.0.0.1/a"), url_key("http://127.0.0.1/b")}
    # The fragment is gone, so the next line appended starts on a line of its own.
    assert state.read_bytes() == b"http://127.0.0.1/a\nhttp://127.0.0.1/b\n"
    journal = Journal(str(state), resume=True)
    journal.add("http://127.0.0.1/c")
    journal.close()
    assert url_key("http://127.0.0.1/c") in load_done(str(state))


def test_a_missing_journal_means_nothing_done(tmp_path: Path) -> None:
    assert load_done(str(tmp_path / "absent")) == set()


def test_each_url_is_in_the_file_as_soon_as_add_returns(tmp_path: Path) -> None:
    # No Python-side buffer: another reader sees the line before close (or a kill -9).
    state = tmp_path / "state"
    journal = Journal(str(state), resume=False)
    try:
        journal.add("http://127.0.0.1/é")
        assert state.read_bytes() == "http://127.0.0.1/é\n".encode()
    finally:
        journal.close()


def test_without_resume_the_journal_starts_afresh(tmp_path: Path, server: LoopbackServer) -> None:
    state = tmp_path / "state"
    state.write_text("http://127.0.0.1:9/old\n")
    url = server.url("/ok?size=1&fresh=1")
    result = afetch_cli("-q", "--state", str(state), stdin=url + "\n")
    assert result.returncode == 0, result.stderr
    assert state.read_text() == url + "\n finished\n"


def test_resume_without_state_is_a_usage_error() -> None:
    result = afetch_cli("--resume", stdin="http://127.0.0.1:9/\n")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_resume_skips_done_urls_and_appends_to_the_output_file(
    tmp_path: Path, fresh_stats: LoopbackServer
) -> None:
    server = fresh_stats
    urls = [server.url(f"/ok/resume-{i}?size=1") for i in range(10)]
    state, out = tmp_path / "state", tmp_path / "out.jsonl"
    first = afetch_cli(
        "-q", "--state", str(state), "-o", str(out), stdin="\n".join(urls[:4]) + "\n"
    )
    assert first.returncode == 0, first.stderr
    # As a run killed before its end leaves it (a finished run's journal starts a new run).
    assert state.read_bytes().endswith(b"\n finished\n")
    state.write_bytes(state.read_bytes().removesuffix(b" finished\n"))
    second = afetch_cli(
        "-q", "--state", str(state), "--resume", "-o", str(out), stdin="\n".join(urls) + "\n"
    )
    assert second.returncode == 0, second.stderr
    records = jsonl(out.read_text())
    assert sorted(r["url"] for r in records) == sorted(urls)
    assert all(server.stats.by_path[f"/ok/resume-{i}"] == 1 for i in range(10))


@pytest.mark.posix
def test_kill_9_then_resume_fetches_everything_once_or_in_flight_twice(
    tmp_path: Path, fresh_stats: LoopbackServer
) -> None:
    server = fresh_stats
    concurrency = 6
    paths = [f"/sleep/{150 + 10 * (i % 5)}/kill-{i}" for i in range(60)]
    urls = [server.url(path) for path in paths]
    sources = tmp_path / "urls.txt"
    sources.write_text("\n".join(urls) + "\n")
    state = tmp_path / "state"
    out1, out2 = tmp_path / "run1.jsonl", tmp_path / "run2.jsonl"
    args = [sys.executable, "-m", "afetch", "-q", "-c", str(concurrency), "--state", str(state)]

    # Run 1: stdout is a plain file, killed with SIGKILL (no clean-up at all) mid-run.
    with out1.open("wb") as stdout:
        victim = subprocess.Popen([*args, str(sources)], stdout=stdout, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while out1.read_bytes().count(b"\n") < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    assert victim.returncode == -signal.SIGKILL
    first = jsonl(out1.read_text())  # whole lines only: every emitted record was flushed
    assert 15 <= len(first) < len(urls)
    fetched_in_run1 = Counter(server.stats.by_path)

    # Run 2: resume from the journal.
    with out2.open("wb") as stdout:
        resumed = subprocess.run(
            [*args, "--resume", str(sources)], stdout=stdout, stderr=subprocess.PIPE, timeout=60
        )
    assert resumed.returncode == 0, resumed.stderr
    second = jsonl(out2.read_text())

    counts = server.stats.by_path
    emitted_first = {r["url"] for r in first}
    # Every URL fetched at least once overall, none more than twice.
    assert all(1 <= counts[path] <= 2 for path in paths)
    # Completed (emitted) ones are not fetched again, except those a kill between one write of
    # records and its journal line can leave unjournaled: one write holds the records that were
    # ready together, at most `concurrency` here.
    refetched_done = [
        u for u, p in zip(urls, paths, strict=True) if u in emitted_first and counts[p] == 2
    ]
    assert len(refetched_done) <= concurrency
    # At most the requests in flight at the kill are fetched twice (plus those duplicates).
    twice = [p for p in paths if counts[p] == 2]
    assert len(twice) <= 2 * concurrency
    assert all(fetched_in_run1[p] == 1 for p in twice)
    # Together the two outputs hold one record per URL, plus at most those duplicates.
    union = Counter(r["url"] for r in first + second)
    assert set(union) == set(urls)
    assert sum(union.values()) - len(urls) <= concurrency
    assert all(r["ok"] for r in first + second)
    print(f"run 1 emitted {len(first)}, fetched twice: {len(twice)}")


def test_the_journal_keeps_each_urls_ok_bit_and_the_end_of_a_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # A journal from before the marks: every line a URL, read as ok.
    state.write_bytes(b"http://127.0.0.1/old\n")
    journal = Journal(str(state), resume=True)
    journal.add("http://127.0.0.1/bad", ok=False)
    journal.add("http://127.0.0.1/good")
    journal.close()
    assert state.read_bytes() == (
        b"http://127.0.0.1/old\n ! http://127.0.0.1/bad\nhttp://127.0.0.1/good\n"
    )
    journal = Journal(str(state), resume=True)
    assert not journal.restarted
    assert journal.earlier.done == {
        url_key(f"http://127.0.0.1/{n}") for n in ("old", "bad", "good")
    }
    assert journal.earlier.failed == {url_key("http://127.0.0.1/bad")}
    journal.finish()
    journal.close()
    again = Journal(str(state), resume=True)
    again.close()
    assert again.restarted
    assert again.earlier.done == set()
    assert state.read_bytes() == b""


@pytest.mark.posix
def test_a_second_run_on_one_journal_is_refused(tmp_path: Path, server: LoopbackServer) -> None:
    # Two runs on one --state used to both run: 40,000 records for 20,000 URLs.
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/sleep/300/lock-{i}") + "\n" for i in range(20)))
    state = tmp_path / "run.state"
    args = [sys.executable, "-m", "afetch", "-q", "-c", "2", str(urls), "--state", str(state)]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        deadline = time.monotonic() + 30
        while not state.exists() or not state.read_bytes():  # the first run is under way
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = afetch_cli(str(urls), "--state", str(state), "--resume")
        assert second.returncode == 2
        assert second.stdout == ""
        assert second.stderr == (
            f"afetch: error: {state} is in use by another afetch run"
            " (--state takes a lock until that run ends)\n"
        )
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert len(jsonl(out)) == 20
    assert state.read_text().count("\n") == 21  # its 20 URLs and the end mark, nothing else


def test_a_resumed_run_answers_for_the_urls_done_before_it(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # A resumed run with nothing left used to exit 0 after a 404 in the interrupted part.
    urls = [server.url("/ok?size=1&earlier=1"), server.url("/status/404?earlier=1")]
    state, out = tmp_path / "run.state", tmp_path / "out.jsonl"
    stdin = "".join(f"{url}\n" for url in urls)
    first = afetch_cli("-q", "--state", str(state), "-o", str(out), stdin=stdin)
    assert first.returncode == 1
    # As a run killed before its end leaves it: both records written, not finished.
    state.write_bytes(state.read_bytes().removesuffix(b" finished\n"))
    second = afetch_cli("--state", str(state), "--resume", "-o", str(out), stdin=stdin)
    assert second.returncode == 1, second.stderr
    assert len(jsonl(out.read_text())) == 2  # nothing fetched again
    assert f"afetch: resuming: 2 URLs already done in {state}\n" in second.stderr
    assert " earlier  2 already done, 1 ok, 1 not ok\n" in second.stderr
    # An old journal (no marks) reads as all ok.
    state.write_text("".join(f"{url}\n" for url in urls))
    third = afetch_cli("-q", "--state", str(state), "--resume", "-o", str(out), stdin=stdin)
    assert third.returncode == 0, third.stderr


def test_resume_on_a_finished_run_starts_a_new_one(
    tmp_path: Path, fresh_stats: LoopbackServer
) -> None:
    server = fresh_stats
    urls = [server.url(f"/ok/again-{i}?size=1") for i in range(3)]
    stdin = "".join(f"{url}\n" for url in urls)
    state, out = tmp_path / "run.state", tmp_path / "out.jsonl"
    args = ("--state", str(state), "--resume", "-o", str(out))
    first = afetch_cli(*args, stdin=stdin)
    assert first.returncode == 0, first.stderr
    assert "resuming" not in first.stderr
    assert "previous run" not in first.stderr
    second = afetch_cli(*args, stdin=stdin)
    assert second.returncode == 0, second.stderr
    assert second.stderr.startswith(f"afetch: {state}: previous run finished; starting a new run\n")
    assert all(server.stats.by_path[f"/ok/again-{i}"] == 2 for i in range(3))
    # A new run: the output holds this run's records only, as without --resume.
    assert sorted(r["url"] for r in jsonl(out.read_text())) == sorted(urls)


def test_a_url_with_a_line_break_cannot_forge_a_journal_mark(tmp_path: Path) -> None:
    state = tmp_path / "state"
    stdin = '{"url": "http://127.0.0.1:9/x\\n finished"}\n'
    result = afetch_cli("-q", "--state", str(state), stdin=stdin)
    assert result.returncode == 1
    lines = state.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(" ! request ")
    assert lines[1] == " finished"


@settings(max_examples=100, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"))
            .map(str.strip)
            .filter(bool),
            st.booleans(),
        ),
        max_size=10,
    ),
    finished=st.booleans(),
)
def test_any_journaled_keys_read_back_with_their_ok_bits(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[str, bool]], finished: bool
) -> None:
    state = tmp_path_factory.mktemp("journal") / "state"
    journal = Journal(str(state), resume=False)
    for key, ok in entries:
        journal.add(key, ok=ok)
    if finished:
        journal.finish()
    journal.close()
    again = Journal(str(state), resume=True)
    again.close()
    assert again.restarted == finished
    if not finished:
        assert again.earlier.done == {url_key(key) for key, _ in entries}
        assert again.earlier.failed == {url_key(key) for key, ok in entries if not ok}
