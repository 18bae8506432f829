import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afetch._loopback import LoopbackServer
from afetch.input.reader import (
    MAX_LINE,
    InputError,
    count_urls,
    open_sources,
    read_urls,
    url_counter,
    url_from_line,
)
from tests.cli_run import cli_env, jsonl


@pytest.mark.parametrize(
    ("line", "url"),
    [
        ("http://a/\n", "http://a/"),
        ("   https://b/x  \r\n", "https://b/x"),
        ("", None),
        ("   \t", None),
        ("# comment", None),
        ("   # indented comment", None),
        ("not a url", "not a url"),  # kept: it becomes a record with an invalid_url error
    ],
)
def test_url_from_line(line: str, url: str | None) -> None:
    assert url_from_line(line) == url


def _read_all(paths: list[str]) -> list[str]:
    async def collect() -> list[str]:
        return [url async for url in read_urls(open_sources(paths))]

    return asyncio.run(collect())


def test_reads_files_in_order_and_handles_a_missing_final_newline(tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    first.write_text("http://1/\n\n# skip\nhttp://2/")
    second = tmp_path / "b.txt"
    second.write_text("http://3/\r\nhttp://4/\n")
    assert _read_all([str(first), str(second)]) == [
        "http://1/",
        "http://2/",
        "http://3/",
        "http://4/",
    ]


def test_lines_spanning_read_chunks_are_joined(tmp_path: Path) -> None:
    urls = [f"http://127.0.0.1/{'x' * (i % 300)}/{i}" for i in range(5000)]
    path = tmp_path / "many.txt"
    path.write_text("\n".join(urls))
    assert _read_all([str(path)]) == urls
    assert count_urls([str(path)]) == len(urls)


def test_invalid_utf8_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"http://127.0.0.1/\xff\xfe\nhttp://127.0.0.1/ok\n")
    urls = _read_all([str(path)])
    assert len(urls) == 2
    assert urls[1] == "http://127.0.0.1/ok"


def test_missing_or_directory_sources_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        open_sources([str(tmp_path / "missing.txt")])
    with pytest.raises(InputError, match="is a directory"):
        open_sources([str(tmp_path)])


def test_reading_is_lazy_over_a_pipe() -> None:
    """The first URL arrives while the writer is still writing: nothing waits for EOF."""
    read_fd, write_fd = os.pipe()

    async def scenario() -> str:
        urls = read_urls([read_fd])
        os.write(write_fd, b"http://127.0.0.1/first\n")
        first = await asyncio.wait_for(anext(urls), 5)
        os.write(write_fd, b"http://127.0.0.1/second\n")
        os.close(write_fd)
        rest = [url async for url in urls]
        assert rest == ["http://127.0.0.1/second"]
        return first

    # The reader owns and closes the descriptor once it reaches the end.
    assert asyncio.run(scenario()) == "http://127.0.0.1/first"


def test_an_endless_line_yields_one_url_and_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "binary.txt"
    with path.open("wb") as handle:
        handle.write(b"http://127.0.0.1/first\n")
        handle.write(b"x" * (5 * MAX_LINE))  # no newline for 5 MiB
        handle.write(b"\nhttp://127.0.0.1/after\n")
    urls = _read_all([str(path)])
    assert len(urls) == 3
    assert urls[0] == "http://127.0.0.1/first"
    assert len(urls[1]) == MAX_LINE
    assert urls[2] == "http://127.0.0.1/after"


def test_a_bom_and_cr_only_line_ends_are_line_syntax_not_url_text(tmp_path: Path) -> None:
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfhttp://127.0.0.1/1\r\nhttp://127.0.0.1/2\r\n")
    mac = tmp_path / "mac.txt"  # classic Mac line ends: CR alone
    mac.write_bytes(b"http://127.0.0.1/3\rhttp://127.0.0.1/4\r# note\r\xef\xbb\xbf\r")
    expected = [f"http://127.0.0.1/{i}" for i in range(1, 5)]
    assert _read_all([str(bom), str(mac)]) == expected
    assert count_urls([str(bom), str(mac)]) == 4


def test_counting_never_reads_a_pipe_or_moves_the_reader(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"http://127.0.0.1/a\n")
    try:
        assert url_counter([read_fd]) is None
        assert os.read(read_fd, 100) == b"http://127.0.0.1/a\n"  # still there for the reader
    finally:
        os.close(read_fd)
        os.close(write_fd)
    path = tmp_path / "urls.txt"
    path.write_text("http://127.0.0.1/a\nhttp://127.0.0.1/b\n")
    fds = open_sources([str(path)])
    counter = url_counter(fds)
    assert counter is not None
    assert asyncio.run(_collect(read_urls(fds))) == ["http://127.0.0.1/a", "http://127.0.0.1/b"]
    assert counter() == 2  # its own descriptors: the reader has closed its one by now


async def _collect(urls: AsyncIterator[object]) -> list[object]:
    return [url async for url in urls]


@pytest.mark.posix
@pytest.mark.parametrize("kind", ["fifo", "dev-stdin"])
def test_progress_on_a_pipe_like_source_loses_no_record(
    tmp_path: Path, server: LoopbackServer, kind: str
) -> None:
    # The progress counter used to reopen the path and drain the pipe: 0 records, exit 0.
    urls = [server.url(f"/ok?size=1&pipe={kind}-{i}") for i in range(300)]
    text = "".join(f"{url}\n" for url in urls)
    args = [sys.executable, "-m", "afetch", "--progress", "--progress-interval", "0.05"]
    if kind == "fifo":
        fifo = tmp_path / "urls.fifo"
        os.mkfifo(fifo)
        proc = subprocess.Popen(
            [*args, str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
        )
        with fifo.open("w") as writer:  # opens once afetch opened its end
            for url in urls:
                writer.write(url + "\n")
                writer.flush()
        out, err = proc.communicate(timeout=60)
    else:
        proc = subprocess.Popen(
            [*args, "/dev/stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        out, err = proc.communicate(text.encode(), timeout=60)
    assert proc.returncode == 0, err
    assert sorted(r["url"] for r in jsonl(out)) == sorted(urls)


_URL_TEXT = (
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff"), min_size=1
    )
    .map(str.strip)
    .filter(lambda text: text != "" and text[0] not in "#{")
)


@settings(max_examples=150, deadline=None)
@given(
    urls=st.lists(_URL_TEXT, min_size=1, max_size=8),
    ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=8, max_size=8),
    bom=st.booleans(),
)
def test_any_line_ends_and_a_bom_read_back_the_same_lines(
    tmp_path_factory: pytest.TempPathFactory, urls: list[str], ends: list[str], bom: bool
) -> None:
    path = tmp_path_factory.mktemp("ends") / "urls.txt"
    text = "".join(url + end for url, end in zip(urls, ends, strict=False))
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    assert _read_all([str(path)]) == [url_from_line(url) for url in urls]


def test_a_loop_closed_while_input_is_handed_over_leaves_no_coroutine_unawaited(
    tmp_path: Path,
) -> None:
    # A run that ends early (a full disk, say) closes its loop while the reader thread may be
    # handing a chunk over. What the thread scheduled then never runs: it must not be a
    # coroutine, which Python reports on stderr as "never awaited" when it is dropped.
    import gc
    import warnings

    from tests.helpers import wait_until

    path = tmp_path / "urls.txt"
    path.write_bytes(b"http://127.0.0.1/x\n" * 200_000)  # many chunks: the thread stays busy
    loop = asyncio.new_event_loop()
    urls = read_urls(open_sources([str(path)]))
    try:
        assert loop.run_until_complete(anext(urls)) == "http://127.0.0.1/x"
        # The loop has stopped: the thread's next hand-over waits in it, never to run.
        wait_until(lambda: len(loop._ready) > 0, timeout=10)  # type: ignore[attr-defined]
    finally:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.close()
            del urls
            gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
