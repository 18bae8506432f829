"""--cache DIR: conditional refetches against the loopback server; atomic, concurrent-safe."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from afetch._cache import Cache, Validators
from afetch._loopback import LoopbackServer
from tests.cli_run import afetch_cli, jsonl
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


def test_conditional_headers_are_what_the_server_sent(
    tmp_path: Path, fresh_stats: LoopbackServer
) -> None:
    url = fresh_stats.url("/etag/hdr?v=7")
    collect([url], cache_dir=str(tmp_path))
    collect([url], cache_dir=str(tmp_path))
    assert fresh_stats.stats.last_headers["if-none-match"] == '"hdr-7"'


def test_a_changed_resource_is_fetched_and_the_cache_updated(tmp_path: Path) -> None:
    cache = Cache(str(tmp_path))
    with LoopbackServer() as server:
        url = server.url("/etag/x?v=new")
        cache.store(url, Validators('"x-old"', None))
        (record,) = collect([url], cache_dir=str(tmp_path))
        assert (record.status, record.not_modified) == (200, False)
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


def test_damaged_entries_and_stray_temp_files_are_ignored(tmp_path: Path) -> None:
    cache = Cache(str(tmp_path))
    url = "http://127.0.0.1:9/damaged"
    cache.store(url, Validators('"a"', None))
    (entry,) = [p for p in tmp_path.rglob("*.json")]
    entry.write_bytes(b'{"url": "http://127.0.0.1:9/dam')  # as if torn
    (entry.parent / ".stray.tmp").write_bytes(b"half")
    assert cache.lookup(url) is None
    entry.write_text(json.dumps({"url": "http://other/", "etag": '"b"'}))
    assert cache.lookup(url) is None  # an entry for another URL is not ours


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path: Path) -> None:
    # Many writers (threads here; processes behave the same: rename is atomic) hammer the same
    # entries while readers read: every read is one complete version or nothing.
    cache = Cache(str(tmp_path))
    urls = [f"http://127.0.0.1:9/{i}" for i in range(5)]
    bad: list[object] = []

    def write(worker: int) -> None:
        for n in range(200):
            url = urls[n % len(urls)]
            cache.store(url, Validators(f'"{worker}-{n}"', "Tue, 14 Nov 2023 22:13:20 GMT"))

    def read() -> None:
        for n in range(1000):
            found = cache.lookup(urls[n % len(urls)])
            if found is not None and not (found.etag or "").startswith('"'):
                bad.append(found)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bad == []
    assert all(cache.lookup(url) is not None for url in urls)
    assert not list(tmp_path.rglob("*.tmp"))


def test_concurrent_processes_share_one_cache(tmp_path: Path, server: LoopbackServer) -> None:
    runs = 2
    urls = "".join(server.url(f"/etag/proc-{i}") + "\n" for i in range(30))
    args = [sys.executable, "-m", "afetch", "-q", "--cache", str(tmp_path / "c")]
    procs = [
        subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(runs)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(urls)
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(60) == 0
        assert proc.stdout is not None
        proc.stdout.close()
    after = collect(urls.split(), cache_dir=str(tmp_path / "c"))
    assert {(r.status, r.not_modified) for r in after} == {(304, True)}
