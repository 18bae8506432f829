"""--save-dir and --hash: names that never leave DIR, atomic files, bodies streamed to disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import afetch
from afetch._loopback import LoopbackServer
from afetch.attempt.save import file_name
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import by_url, collect

TRAVERSAL_CORPUS = [
    "http://h.test/../../etc/passwd",
    "http://h.test/%2e%2e/%2e%2e/etc/passwd",
    "http://h.test/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "http://h.test/..%2F..%2F..%2Fetc%2Fpasswd",
    "http://h.test/%2E%2E%5C%2E%2E%5Cwindows%5Csystem32",
    "http://h.test//etc/passwd",
    "http://h.test/%2Fetc%2Fpasswd",
    "http://h.test/a%00b",
    "http://h.test/a%0d%0ab",
    "http://h.test/%1b[31mred",
    "http://h.test/" + "a" * 1000,
    "http://h.test/" + "é" * 300 + ".html",
    "http://h.test/" + "%F0%9F%92%A9" * 100,
    "http://h.test/CON",
    "http://h.test/nul.txt",
    "http://h.test/COM1.tar.gz",
    "http://h.test/.",
    "http://h.test/..",
    "http://h.test/...",
    "http://h.test/.hidden",
    "http://h.test/-rf",
    "http://h.test/a/b",
    "http://h.test/a_b",
    "http://h.test/a?b",
    "http://h.test/a%2Fb",
    "http://h.test/a%2fb",
    "http://h.test/a b",
    "http://h.test/a%20b",
    "http://h.test/",
    "http://h.test",
    "http://h.test/?",
    "http://h.test/x#frag",
    "http://h.test:8080/x",
    "http://h.test:8081/x",
    "http://[::1]/x",
    "http://xn--bcher-kva.test/x",
    "http://h.test/~user/index.html",
    "http://h.test/dir/",
    "http://h.test/dir",
]


@pytest.mark.parametrize("url", TRAVERSAL_CORPUS)
def test_names_are_single_safe_components(url: str) -> None:
    for part in file_name(url):
        assert part not in ("", ".", "..")
        assert not {"/", "\\", "\0"} & set(part)
        assert not part.startswith((".", "-"))
        assert part.isascii()
        assert part.isprintable()
        assert len(part.encode()) <= 255
        assert part.split(".")[0].lower() not in ("con", "nul", "com1", "prn", "aux")


def test_distinct_urls_get_distinct_names_and_the_same_url_the_same_name() -> None:
    names = [file_name(url) for url in TRAVERSAL_CORPUS]
    assert len(set(names)) == len(TRAVERSAL_CORPUS)
    assert names == [file_name(url) for url in TRAVERSAL_CORPUS]


def test_the_traversal_corpus_lands_inside_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=request.url.raw_path)
    )
    records = collect(TRAVERSAL_CORPUS, transport=transport, save_dir=str(out))
    root = os.path.realpath(out)
    paths = set()
    for record in records:
        assert record.ok, record
        assert record.path is not None
        assert record.sha256 is not None
        real = os.path.realpath(record.path)
        assert os.path.commonpath([root, real]) == root
        assert hashlib.sha256(Path(real).read_bytes()).hexdigest() == record.sha256
        paths.add(real)
    assert len(paths) == len(TRAVERSAL_CORPUS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing beside DIR
    assert sorted(str(p) for p in out.rglob("*") if p.is_file()) == sorted(paths)


def test_bodies_are_saved_whole_with_their_sha256(tmp_path: Path, server: LoopbackServer) -> None:
    url = server.url("/ok?size=1500000")
    (record,) = collect([url], save_dir=str(tmp_path))
    expected = b"x" * 1_500_000
    assert record.path is not None
    assert Path(record.path).read_bytes() == expected
    assert record.sha256 == hashlib.sha256(expected).hexdigest()
    assert record.path == os.path.join(str(tmp_path), *file_name(url))


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/reset-body", "protocol"),
        ("/truncate", "protocol"),
        ("/drip?n=20&interval=0.1", "timeout"),
    ],
)
def test_a_failed_download_leaves_no_file_at_all(
    tmp_path: Path, server: LoopbackServer, path: str, kind: str
) -> None:
    (record,) = collect([server.url(path)], save_dir=str(tmp_path), timeout=0.5)
    assert record.error is not None
    assert record.error.type == kind
    assert (record.path, record.sha256) == (None, None)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no final name, no .part


def test_an_interrupted_run_leaves_no_file(tmp_path: Path, server: LoopbackServer) -> None:
    async def run() -> list[afetch.Record]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.4, stop.set)
        urls = [server.url("/drip?n=50&interval=0.05")]
        return [r async for r in afetch.fetch(urls, stop=stop, save_dir=str(tmp_path))]

    assert asyncio.run(run()) == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_error_statuses_and_head_save_nothing(tmp_path: Path, server: LoopbackServer) -> None:
    (missing,) = collect([server.url("/status/404")], save_dir=str(tmp_path))
    (head,) = collect([server.url("/ok")], save_dir=str(tmp_path), method="HEAD")
    assert (missing.status, missing.path, missing.sha256) == (404, None, None)
    assert (head.status, head.path) == (200, None)
    assert list(tmp_path.rglob("*.*")) == []


@pytest.mark.posix
def test_a_symlinked_host_folder_is_refused(tmp_path: Path, server: LoopbackServer) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    url = server.url("/ok?size=10")
    host, _ = file_name(url)
    (out / host).symlink_to(outside)
    (record,) = collect([url], save_dir=str(out))
    assert record.error is not None
    assert record.error.type == "save"
    assert list(outside.iterdir()) == []


@pytest.mark.posix
def test_a_symlink_at_the_final_name_is_replaced_not_followed(
    tmp_path: Path, server: LoopbackServer
) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.write_bytes(b"precious")
    url = server.url("/ok?size=10")
    host, name = file_name(url)
    (out / host).mkdir(parents=True)
    (out / host / name).symlink_to(victim)
    (record,) = collect([url], save_dir=str(out))
    assert record.ok
    assert victim.read_bytes() == b"precious"
    final = out / host / name
    assert not final.is_symlink()
    assert final.read_bytes() == b"x" * 10


def test_cli_hash_adds_sha256_without_saving(tmp_path: Path, server: LoopbackServer) -> None:
    urls = [server.url("/ok?size=100"), server.url("/status/500")]
    result = afetch_cli("-q", "--hash", stdin="\n".join(urls) + "\n")
    records = {r["url"]: r for r in jsonl(result.stdout)}
    ok = records[urls[0]]
    assert ok["sha256"] == hashlib.sha256(b"x" * 100).hexdigest()
    assert "path" not in ok
    assert records[urls[1]]["sha256"] is None


def test_cli_save_dir_records_and_files(tmp_path: Path, server: LoopbackServer) -> None:
    urls = [server.url(f"/ok/cli-{i}?size={i}") for i in range(1, 6)]
    out = tmp_path / "nested" / "out"
    result = afetch_cli("-q", "--save-dir", str(out), stdin="\n".join(urls) + "\n")
    assert result.returncode == 0, result.stderr
    records = by_url_dicts(jsonl(result.stdout))
    for i, url in enumerate(urls, 1):
        assert Path(records[url]["path"]).read_bytes() == b"x" * i
        assert list(records[url])[-2:] == ["path", "sha256"]


def test_cli_save_dir_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = afetch_cli("--save-dir", str(blocker / "sub"), stdin="http://127.0.0.1:9/\n")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def by_url_dicts(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {record["url"]: record for record in records}


def test_two_urls_with_one_readable_name_do_not_overwrite_each_other(tmp_path: Path) -> None:
    urls = ["http://h.test/a/b", "http://h.test/a_b", "http://h.test/a%2Fb"]
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=str(request.url)))
    records = by_url(collect(urls, transport=transport, save_dir=str(tmp_path)))
    contents = {Path(records[url].path or "").read_bytes() for url in urls}
    assert len(contents) == 3


def test_while_downloading_only_a_part_file_exists(tmp_path: Path) -> None:
    url = "http://h.test/big.bin"
    host, name = file_name(url)
    seen: list[list[str]] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"z" * (300 * 1024)  # more than one batch: written before the end
            await asyncio.sleep(0.05)
            seen.append(sorted(p.name for p in (tmp_path / host).iterdir()))

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body()))
    (record,) = collect([url], transport=transport, save_dir=str(tmp_path))
    assert record.ok
    assert seen
    for names in seen:
        assert len(names) == 1
        assert names[0].startswith(f".{name}.")
        assert names[0].endswith(".part")
    assert sorted(p.name for p in (tmp_path / host).iterdir()) == [name]
    assert Path(record.path or "").stat().st_size == 4 * 300 * 1024
