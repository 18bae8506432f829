"""--cache DIR: conditional refetches against the loopback server; one SQLite index per folder,
shared by concurrent processes; an unusable index means unconditional fetches, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import afetch.cache.worker
from afetch._loopback import LoopbackServer
from afetch.cache import INDEX, UNKNOWN, BatchedCache, Index, Validators, cache_for, flush
from tests.cli_run import afetch_cli, cli_env, jsonl
from tests.fake_clock import FakeClock
from tests.helpers import by_url, collect


def test_second_run_sends_validators_and_gets_304(
    tmp_path: Path, fresh_stats: LoopbackServer
) -> None:
    server = fresh_stats
    urls = [server.url("/etag/one"), server.url("/last-modified/two"), server.url("/ok?size=5")]
    first = by_url(collect(urls, cache_dir=str(tmp_path)))
    assert {r.status for r in first.values()} == {200}
    assert all(r.not_modified is False for r in first.values())
    second = by_url(collect(urls, cache_dir=str(tmp_path)))
    for url in urls[:2]:
        record = second[url]
        assert (record.status, record.ok, record.not_modified, record.bytes) == (304, True, True, 0)
    # No validators from /ok: nothing cached, a plain 200 again.
    assert (second[urls[2]].status, second[urls[2]].not_modified) == (200, False)


def test_the_httpx_adapter_reads_validators_too(tmp_path: Path, server: LoopbackServer) -> None:
    urls = [server.url("/etag/adapter"), server.url("/last-modified/adapter")]

    def run() -> list[tuple[int | None, bool | None]]:
        transport = httpx.AsyncHTTPTransport()  # the httpx adapter instead of libcurl
        return [
            (r.status, r.not_modified)
            for r in collect(urls, cache_dir=str(tmp_path), transport=transport)
        ]

    assert run() == [(200, False), (200, False)]
    assert run() == [(304, True), (304, True)]


def test_conditional_headers_are_what_the_server_sent(
    tmp_path: Path, fresh_stats: LoopbackServer
) -> None:
    url = fresh_stats.url("/etag/hdr?v=7")
    collect([url], cache_dir=str(tmp_path))
    collect([url], cache_dir=str(tmp_path))
    assert fresh_stats.stats.last_headers["if-none-match"] == '"hdr-7"'


def test_a_changed_resource_is_fetched_and_the_cache_updated(tmp_path: Path) -> None:
    cache = Index(str(tmp_path))
    with LoopbackServer() as server:
        url = server.url("/etag/x?v=new")
        cache.store(url, Validators('"x-old"', None))
        (record,) = collect([url], cache_dir=str(tmp_path))
        assert (record.status, record.not_modified) == (200, False)
        assert flush(10)  # stores are written behind: wait for them
        assert cache.lookup(url) == Validators('"x-new"', None)
        (again,) = collect([url], cache_dir=str(tmp_path))
        assert (again.status, again.not_modified) == (304, True)


def test_key_present_only_with_the_option(tmp_path: Path, server: LoopbackServer) -> None:
    url = server.url("/etag/cli")
    assert "not_modified" not in collect([url])[0].to_dict()
    cached = jsonl(afetch_cli("-q", "--cache", str(tmp_path), stdin=url + "\n").stdout)
    again = jsonl(afetch_cli("-q", "--cache", str(tmp_path), stdin=url + "\n").stdout)
    assert cached[0]["not_modified"] is False
    assert (again[0]["status"], again[0]["ok"], again[0]["not_modified"]) == (304, True, True)


def test_an_unusable_index_means_unconditional_fetches_not_a_crash(
    tmp_path: Path, server: LoopbackServer
) -> None:
    url = server.url("/etag/junk")
    (tmp_path / INDEX).write_bytes(b"not a database at all, " * 100)
    done = afetch_cli("-q", "--cache", str(tmp_path), stdin=url + "\n")
    assert done.returncode == 0, done.stderr
    (record,) = jsonl(done.stdout)
    assert (record["status"], record["ok"], record["not_modified"]) == (200, True, False)
    # The entry could not be written: said once, as a warning, not as the URL's error.
    assert done.stderr.count("afetch: warning:") == 1
    assert "Traceback" not in done.stderr
    assert (tmp_path / INDEX).read_bytes().startswith(b"not a database")


def test_a_damaged_row_is_a_miss(tmp_path: Path) -> None:
    cache = Index(str(tmp_path))
    url = "http://127.0.0.1:9/damaged"
    cache.store(url, Validators('"a"', None))
    with sqlite3.connect(tmp_path / INDEX) as db:
        db.execute("UPDATE validators SET etag = x'00ff'")  # a blob: not written by afetch
    assert cache.lookup(url) is None
    with sqlite3.connect(tmp_path / INDEX) as db:
        db.execute("UPDATE validators SET url = 'http://other/', etag = '\"b\"'")
    assert cache.lookup(url) is None  # a row for another URL (same key) is not ours
    cache.close()


@pytest.mark.parametrize("as_json", [True, False])
def test_batched_look_ups_with_and_without_sqlites_json_functions(
    tmp_path: Path, as_json: bool
) -> None:
    cache = Index(str(tmp_path))
    cache._json = as_json  # an SQLite older than 3.38 may lack them: the plain query then
    urls = [f"http://127.0.0.1:9/{i}" for i in range(700)]  # two queries: 512 keys at most
    stored = {
        url: Validators(f'"{i}"' if i % 2 else None, f"day {i}") for i, url in enumerate(urls)
    }
    cache.store_many(list(stored.items())[:600])
    cache.store_many([(urls[0], None)])  # removed
    found = cache.lookup_many(urls)
    assert found == [None] + [stored[url] for url in urls[1:600]] + [None] * 100
    cache.close()


def test_an_old_format_folder_is_left_alone_and_used_from_now_on(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # One JSON file per URL (DIR/XX/HASH.json) before: not read, not touched, not a crash.
    old = tmp_path / "ab" / ("ab" + "0" * 30 + ".json")
    old.parent.mkdir()
    old.write_text('{"url": "http://127.0.0.1:9/x", "etag": "\\"1\\"", "last_modified": null}')
    url = server.url("/etag/old-format")
    first = jsonl(afetch_cli("-q", "--cache", str(tmp_path), stdin=url + "\n").stdout)
    again = jsonl(afetch_cli("-q", "--cache", str(tmp_path), stdin=url + "\n").stdout)
    assert [(r["status"], r["not_modified"]) for r in first + again] == [(200, False), (304, True)]
    assert old.read_text().startswith('{"url"')
    # Nothing but the index (and SQLite's own files beside it) was added.
    added = {p.name for p in tmp_path.iterdir()} - {"ab"}
    assert added <= {INDEX, INDEX + "-wal", INDEX + "-shm"}, added


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="symlinks")
def test_a_symlink_at_the_index_names_is_not_followed(
    tmp_path: Path, server: LoopbackServer
) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"")
    for name in (INDEX, INDEX + "-wal"):
        folder = tmp_path / f"cache-{name}"
        folder.mkdir()
        (folder / name).symlink_to(outside)
        url = server.url(f"/etag/link-{name}")
        done = afetch_cli("-q", "--cache", str(folder), stdin=url + "\n")
        assert done.returncode == 0, done.stderr
        assert jsonl(done.stdout)[0]["status"] == 200
        assert outside.read_bytes() == b""
        # Nothing written through the link: no outside-wal, no outside-shm beside its target.
        assert [p.name for p in tmp_path.iterdir() if not p.is_dir()] == ["outside"]


@contextlib.contextmanager
def _index_held(folder: Path) -> Iterator[None]:
    """An index with one entry, held exclusively by another connection (as another process
    would): a look-up would wait BUSY_TIMEOUT_S for it."""
    index = Index(str(folder))
    index.store("http://127.0.0.1:9/", Validators('"a"', None))  # creates the index
    index.close()
    holder = sqlite3.connect(folder / INDEX, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM validators")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_index_delays_a_fetch_by_at_most_the_look_up_wait(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("afetch.cache.worker.LOOKUP_WAIT_S", 0.3)
    # Far beyond the bound below: a fetch that waited for the lock would fail it (the exact
    # give-up time is checked on a fake clock below).
    monkeypatch.setattr("afetch.cache.index.BUSY_TIMEOUT_S", 30.0)
    with _index_held(tmp_path):
        started = time.monotonic()
        records = collect(
            [server.url(f"/etag/locked-{i}") for i in range(5)], cache_dir=str(tmp_path)
        )
        elapsed = time.monotonic() - started
    assert {(r.status, r.not_modified) for r in records} == {(200, False)}
    assert elapsed < 5.0  # the look-ups gave up after 0.3 s, not BUSY_TIMEOUT_S
    flush(10)


def test_a_look_up_the_index_cannot_answer_is_a_miss_at_the_look_up_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a fake clock: the look-up's deadline and its expiry timer are on the clock it is given.
    monkeypatch.setattr("afetch.cache.index.BUSY_TIMEOUT_S", 30.0)
    monkeypatch.setattr("afetch.cache.worker.LOOKUP_WAIT_S", 10.0)
    url = "http://127.0.0.1:9/locked"

    async def look_up() -> tuple[bool, bool, object, tuple[float, float]]:
        clock = FakeClock()
        shared = cache_for(str(tmp_path))
        early = shared.lookup(url, clock.now + 5.0, clock=clock)  # the attempt's deadline
        late = shared.lookup(url, clock=clock)
        await asyncio.sleep(0.2)  # the thread is stuck on the lock meanwhile
        unanswered = not early.done() and not late.done()
        assert clock.jump()  # the earlier deadline: the attempt's
        first = early.done() and not late.done() and early.result() is None
        at_first = clock.elapsed()
        assert clock.jump()  # LOOKUP_WAIT_S
        return unanswered, first, await late, (at_first, clock.elapsed())

    with _index_held(tmp_path):
        unanswered, first, found, times = asyncio.run(look_up())
    assert (unanswered, first, found) == (True, True, None)
    assert times == (5.0, 10.0)  # each at its deadline on the clock, not on the wall
    flush(10)


def test_stores_are_written_behind_and_a_full_backlog_drops_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("afetch.cache.worker.STORE_BACKLOG", 3)
    monkeypatch.setattr("afetch.cache.index.BUSY_TIMEOUT_S", 0.5)
    index = Index(str(tmp_path))
    index.store("http://127.0.0.1:9/x", None)  # creates the index
    index.close()
    holder = sqlite3.connect(tmp_path / INDEX, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing for long: ours must wait

    async def store_all() -> float:
        cache = cache_for(str(tmp_path))
        started = time.monotonic()
        for i in range(5):
            cache.store(f"http://127.0.0.1:9/{i}", Validators(f'"{i}"', None))
        return time.monotonic() - started

    try:
        # The records never wait for the index: not BUSY_TIMEOUT_S (0.5 s) per store.
        assert asyncio.run(store_all()) < 0.5
        assert not flush(0.2)  # the index is locked: not written yet
        time.sleep(0.5)  # BUSY_TIMEOUT_S: the first batch gives up
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert flush(10)
    err = capsys.readouterr().err
    # The first batch met the lock (after BUSY_TIMEOUT_S); two stores found the backlog full.
    assert err.count("afetch: warning:") == 1, err
    cache = Index(str(tmp_path))
    assert cache.lookup_many([f"http://127.0.0.1:9/{i}" for i in range(5)]) == [None] * 5
    cache.close()


def test_an_image_answering_look_ups_outlives_the_idle_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A warm run's look-ups are all answered on the loop from the in-memory image, so none
    # reaches the thread. That is work: dropping the image after IDLE_S would send the next
    # look-ups through the thread until the whole index was read again.
    monkeypatch.setattr("afetch.cache.worker.IDLE_S", 0.2)
    url, validators = "http://127.0.0.1:9/kept", Validators('"v1"', None)
    index = Index(str(tmp_path))
    index.store(url, validators)
    index.close()

    async def run() -> tuple[list[object], object]:
        cache = cache_for(str(tmp_path))
        assert await cache.lookup(url) == validators  # the thread opens the index: the image
        seen = []
        for _ in range(25):  # 0.5 s: two and a half idle times, a look-up every tenth of one
            seen.append(cache.lookup_now(url))
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # no look-up at all: the thread closes the index
        return seen, cache.lookup_now(url)

    seen, after_idle = asyncio.run(run())
    assert seen == [validators] * 25
    assert after_idle is UNKNOWN


def test_a_large_index_answers_the_urls_read_ahead_without_a_trip_each(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past IMAGE_MAX the index is a KeyFilter: a URL it may hold is looked up by the thread.
    # The URLs the scheduler reads ahead are looked up before they start, a batch per query,
    # so lookup_now() answers nearly all of them on the loop: no lookup_then() and wake-up per
    # URL.
    monkeypatch.setattr("afetch.cache.image.IMAGE_MAX", 10)
    urls = [server.url(f"/etag/ahead-{i}") for i in range(300)]
    cold = collect(urls, cache_dir=str(tmp_path), concurrency=4)
    assert {record.status for record in cold} == {200}
    assert flush(10)
    asked = []
    lookup_then = BatchedCache.lookup_then
    monkeypatch.setattr(
        BatchedCache,
        "lookup_then",
        lambda self, url, *rest: (asked.append(url), lookup_then(self, url, *rest)),
    )
    warm = collect(urls, cache_dir=str(tmp_path), concurrency=4)
    assert {(record.status, record.not_modified) for record in warm} == {(304, True)}
    assert len(asked) < 30, len(asked)  # the first URLs of a run start before any look-ahead


def test_prefetched_answers_are_bounded_and_a_waiting_store_wins(tmp_path: Path) -> None:
    index = Index(str(tmp_path))
    index.store_many([(f"http://127.0.0.1:9/{i}", Validators(f'"{i}"', None)) for i in range(50)])
    index.close()
    worker = BatchedCache(Index(str(tmp_path)))
    fresh = "http://127.0.0.1:9/0"
    worker._stores[fresh] = ('"newer"', None)  # written since, not yet in the index
    batches = [[f"http://127.0.0.1:9/{i}" for i in range(n, n + 5)] for n in range(0, 50, 5)]
    worker._look_ahead(batches[:1])
    assert worker._prefetched[fresh] == ('"newer"', None)
    assert worker._prefetched["http://127.0.0.1:9/1"] == ('"1"', None)
    for batch in batches[1:]:
        worker._look_ahead([batch])
    # Only the last PREFETCH_KEEP batches are kept: older URLs have started by then.
    assert len(worker._prefetched) == 5 * afetch.cache.worker.PREFETCH_KEEP
    assert fresh not in worker._prefetched
    worker._index.close()


def test_an_index_being_created_by_another_process_is_waited_for(tmp_path: Path) -> None:
    # Another process has just created the index and holds its lock, not yet in WAL mode:
    # SQLite refuses the switch to WAL at once ("database is locked") instead of waiting.
    holder = sqlite3.connect(tmp_path / INDEX, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: holder.execute("ROLLBACK")).start()
    cache = Index(str(tmp_path))
    try:
        cache.store("http://127.0.0.1:9/created", Validators('"c"', None))
        assert cache.lookup("http://127.0.0.1:9/created") == Validators('"c"', None)
    finally:
        cache.close()
        holder.close()


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path: Path) -> None:
    # Writers with connections of their own (as separate processes have) replace the same
    # entries while readers read: every read is one complete version or nothing, and nobody
    # gets "database is locked" (writers wait their turn).
    urls = [f"http://127.0.0.1:9/{i}" for i in range(5)]
    bad: list[object] = []

    def write(worker: int) -> None:
        cache = Index(str(tmp_path))
        try:
            for n in range(100):
                url = urls[n % len(urls)]
                cache.store(url, Validators(f'"{worker}-{n}"', "Tue, 14 Nov 2023 22:13:20 GMT"))
        except Exception as exc:
            bad.append(exc)
        finally:
            cache.close()

    def read() -> None:
        cache = Index(str(tmp_path))
        for n in range(500):
            found = cache.lookup(urls[n % len(urls)])
            if found is not None and not (
                (found.etag or "").startswith('"') and found.last_modified is not None
            ):
                bad.append(found)
        cache.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bad == []
    cache = Index(str(tmp_path))
    assert all(cache.lookup(url) is not None for url in urls)
    cache.close()


def test_concurrent_processes_share_one_cache(tmp_path: Path, server: LoopbackServer) -> None:
    # Both start on an empty folder at once: both create the index, both write all along.
    runs = 3
    urls = "".join(server.url(f"/etag/proc-{i}") + "\n" for i in range(300))
    args = [sys.executable, "-m", "afetch", "-q", "-c", "20", "--cache", str(tmp_path / "c")]
    procs = [
        subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        for _ in range(runs)
    ]
    outputs = [proc.communicate(urls, timeout=120) for proc in procs]
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert stderr == ""  # no warning: no "database is locked", no dropped entry
        records = jsonl(stdout)
        assert len(records) == 300
        assert all(r["ok"] and r["status"] in (200, 304) for r in records)
    after = collect(urls.split(), cache_dir=str(tmp_path / "c"))
    assert {(r.status, r.not_modified) for r in after} == {(304, True)}


# What the worker thread holds of the index, and what lookup_now answers on the loop from it.


async def _asked(cache: BatchedCache, url: str) -> Validators | None:
    """``url`` looked up through the worker thread (lookup_then), as an attempt does on
    UNKNOWN."""
    told: asyncio.Future[Validators | None] = asyncio.get_running_loop().create_future()
    cache.lookup_then(url, None, told.set_result)
    return await asyncio.wait_for(told, 5)


def test_a_small_index_is_answered_on_the_loop(tmp_path: Path) -> None:
    stored = Index(str(tmp_path))
    stored.store("http://127.0.0.1:9/a", Validators('"a"', None))
    stored.close()

    async def run() -> list[object]:
        cache = cache_for(str(tmp_path))
        seen: list[object] = [cache.lookup_now("http://127.0.0.1:9/a")]  # the worker has not begun
        seen.append(await _asked(cache, "http://127.0.0.1:9/a"))  # it opens the index whole
        seen.append(cache.lookup_now("http://127.0.0.1:9/a"))  # now at once, no trip
        seen.append(cache.lookup_now("http://127.0.0.1:9/b"))  # a miss at once
        cache.store("http://127.0.0.1:9/b", Validators(None, "Mon"))  # queued, not written yet
        seen.append(cache.lookup_now("http://127.0.0.1:9/b"))
        cache.store("http://127.0.0.1:9/a", None)  # the server dropped its validators
        seen.append(cache.lookup_now("http://127.0.0.1:9/a"))
        return seen

    assert asyncio.run(run()) == [
        UNKNOWN,
        Validators('"a"', None),
        Validators('"a"', None),
        None,
        Validators(None, "Mon"),
        None,
    ]
    assert flush(10)


def test_an_image_that_outgrows_its_bound_becomes_a_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("afetch.cache.image.IMAGE_MAX", 2)

    async def run() -> list[object]:
        cache = cache_for(str(tmp_path))
        await _asked(cache, "http://127.0.0.1:9/0")  # the worker opens the empty index whole
        for n in range(3):  # a cold run stores an entry per URL
            cache.store(f"http://127.0.0.1:9/{n}", Validators(f'"{n}"', None))
        return [
            cache.lookup_now("http://127.0.0.1:9/1"),  # known to be stored, asked for
            await _asked(cache, "http://127.0.0.1:9/1"),
            cache.lookup_now("http://127.0.0.1:9/9"),  # still a miss at once
        ]

    assert asyncio.run(run()) == [UNKNOWN, Validators('"1"', None), None]
    assert flush(10)


def test_a_cold_cache_miss_needs_no_trip_to_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("afetch.cache.image.IMAGE_MAX", -1)  # too large to hold: a KeyFilter

    async def run() -> list[object]:
        cache = cache_for(str(tmp_path))
        # The first look-up goes to the worker thread, which opens the index and its filter.
        seen: list[object] = [await _asked(cache, "http://127.0.0.1:9/a")]
        # Not in the index: a miss at once.
        seen.append(cache.lookup_now("http://127.0.0.1:9/b"))
        # Stored in this process (not written yet): known to the filter, answered from the queue.
        cache.store("http://127.0.0.1:9/c", Validators('"c"', None))
        seen.append(cache.lookup_now("http://127.0.0.1:9/c"))
        seen.append(await _asked(cache, "http://127.0.0.1:9/c"))
        return seen

    assert asyncio.run(run()) == [None, None, UNKNOWN, Validators('"c"', None)]
    assert flush(10)


@pytest.mark.parametrize("image_max", [-1, 10])
def test_what_the_worker_knows_sees_another_processs_entries_once_the_index_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_max: int
) -> None:
    monkeypatch.setattr("afetch.cache.worker.IDLE_S", 0.1)
    monkeypatch.setattr("afetch.cache.image.IMAGE_MAX", image_max)  # a KeyFilter, or the image
    url = "http://127.0.0.1:9/other"

    async def look_up() -> object:
        cache = cache_for(str(tmp_path))
        found = cache.lookup_now(url)
        return await _asked(cache, url) if found is UNKNOWN else found

    async def run() -> list[object]:
        seen = [await look_up()]  # the worker opens the index: it holds no entry
        seen.append(await look_up())  # known at once to be a miss
        other = Index(str(tmp_path))  # another process writes the entry
        other.store(url, Validators('"o"', None))
        other.close()
        seen.append(await look_up())  # not seen yet: the index is still open
        await asyncio.sleep(0.5)  # the worker idles out, closing the index
        seen.append(await look_up())
        return seen

    assert asyncio.run(run()) == [None, None, None, Validators('"o"', None)]
