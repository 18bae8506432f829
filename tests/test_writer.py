"""Output off the event loop: the writer thread, its bounded hand-off, and the CLI around it.

In-process tests drive ``RecordWriter`` on real pipes; subprocess tests run the CLI against the
loopback server with a reader that does not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from afetch._loopback import LoopbackServer
from afetch._record import Record
from afetch._stats import Stats
from afetch.input.journal import Journal
from afetch.output.sinks import CsvSink, JsonLinesSink, OutputFailed
from afetch.output.whole_lines import PIPE_BUF
from afetch.output.writer import HANDOFF_RECORDS, LINGER_S, RecordWriter
from tests.cli_run import cli_env, jsonl
from tests.fake_clock import FakeClock

ENV = cli_env()
AFETCH = (sys.executable, "-m", "afetch")


def unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe shrunk to one page, so that a few records fill it."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):
            os.close(fd)


def record(i: int, *, url_size: int = 0) -> Record:
    return Record(url=f"http://127.0.0.1/{i}" + "x" * url_size, status=200)


async def wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def fill(writer: RecordWriter, start: int = 0) -> int:
    """Offer records until the hand-off stays full (the writer is stuck on the pipe)."""
    i = start
    while True:
        if writer.offer(record(i)):
            i += 1
            await asyncio.sleep(0.001)
            continue
        await asyncio.sleep(5 * LINGER_S)  # the writer picks records up after lingering
        if not writer.offer(record(i)):
            return i
        i += 1


def test_a_full_hand_off_makes_put_wait_for_the_reader(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe

    async def main() -> tuple[int, bytes, Stats]:
        stats = Stats()
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(stream, JsonLinesSink(stream), stats=stats, limit=8)
        handed = await fill(writer)
        put = asyncio.ensure_future(writer.put(record(handed)))
        await asyncio.sleep(0.3)
        assert not put.done(), "put must wait while the reader does not read"
        received = bytearray()
        reader = threading.Thread(target=lambda: drain(read_end, received), daemon=True)
        reader.start()
        assert await put is True
        assert await writer.close(stop=asyncio.Event(), grace=1.0) is True
        writer.check()
        os.close(write_end)
        reader.join(5)
        return handed + 1, bytes(received), stats

    count, data, stats = asyncio.run(main())
    lines = jsonl(data)
    assert [line["url"] for line in lines] == [record(i).url for i in range(count)]
    assert stats.done == count


def test_a_half_full_hand_off_wakes_a_lingering_writer(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records arriving faster than the linger would otherwise fill the hand-off and stall the
    run for the rest of it: half full, the writer is woken at once."""
    monkeypatch.setattr("afetch.output.writer.LINGER_S", 30.0)
    read_end, write_end = pipe

    async def main() -> float:
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(stream, JsonLinesSink(stream), stats=Stats(), limit=8)
        await asyncio.sleep(0.05)  # the writer has started, lingering for 30 s
        started = time.monotonic()
        for i in range(4):  # half of the hand-off: wakes it
            assert writer.offer(record(i))
        received = bytearray()

        def four_lines() -> bool:
            if unread(read_end):
                received.extend(os.read(read_end, 65536))
            return received.count(b"\n") == 4

        await wait_until(four_lines)
        took = time.monotonic() - started
        writer.abandon()
        return took

    assert asyncio.run(main()) < 10.0  # far from the 30 s linger


def test_offer_many_hands_over_what_fits_and_wakes_a_lingering_writer(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch goes over under one lock, as far as there is room; a batch that crosses the
    half-full mark wakes the lingering writer, as single offers do."""
    monkeypatch.setattr("afetch.output.writer.LINGER_S", 30.0)
    read_end, write_end = pipe

    async def main() -> tuple[list[int], float, bytes]:
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(stream, JsonLinesSink(stream), stats=Stats(), limit=8)
        await asyncio.sleep(0.05)  # the writer has started, lingering for 30 s
        started = time.monotonic()
        handed = [writer.offer_many([record(0), record(1)])]  # below half: no wake-up
        handed.append(writer.offer_many([record(i) for i in range(2, 12)]))  # 6 of 10 fit
        handed.append(writer.offer_many([record(99)]))  # full
        received = bytearray()

        def eight_lines() -> bool:
            if unread(read_end):
                received.extend(os.read(read_end, 65536))
            return received.count(b"\n") == 8

        await wait_until(eight_lines)
        took = time.monotonic() - started
        writer.abandon()
        return handed, took, bytes(received)

    handed, took, received = asyncio.run(main())
    assert handed == [2, 6, 0]
    assert took < 10.0  # far from the 30 s linger
    urls = [json.loads(line)["url"] for line in received.splitlines()]
    assert urls == [record(i).url for i in range(8)]


def test_put_many_hands_a_wave_larger_than_the_hand_off_over_as_room_comes(
    pipe: tuple[int, int],
) -> None:
    """A wave of records (-c 500 answered at once) larger than the hand-off goes over in
    order, as much as fits each time the writer frees room, and none is left behind."""
    read_end, write_end = pipe

    async def main() -> tuple[int, list[int], bytes]:
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(stream, JsonLinesSink(stream), stats=Stats(), limit=8)
        offers: list[int] = []
        offer_many = writer.offer_many

        def counted(records: list[Record]) -> int:
            offers.append(len(records))
            return offer_many(records)

        writer.offer_many = counted  # type: ignore[method-assign]
        received = bytearray()
        reader = threading.Thread(target=lambda: drain(read_end, received), daemon=True)
        reader.start()
        handed = await writer.put_many([record(i) for i in range(50)])
        assert await writer.close(stop=asyncio.Event(), grace=1.0) is True
        os.close(write_end)
        reader.join(5)
        return handed, offers, bytes(received)

    handed, offers, received = asyncio.run(main())
    assert handed == 50
    urls = [json.loads(line)["url"] for line in received.splitlines()]
    assert urls == [record(i).url for i in range(50)]
    # Each offer carries the rest of the wave, not one record: far fewer than 50.
    assert offers[0] == 50
    assert len(offers) < 25


def drain(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into += chunk


def test_an_interrupted_writer_is_abandoned_and_journals_only_what_was_written(
    pipe: tuple[int, int], tmp_path: Path
) -> None:
    read_end, write_end = pipe
    journal_path = tmp_path / "state"

    async def main() -> tuple[float, Stats, bool]:
        clock = FakeClock()
        stats = Stats()
        journal = Journal(str(journal_path), resume=False)
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(
            stream, JsonLinesSink(stream), stats=stats, journal=journal, limit=8, clock=clock
        )
        handed = await fill(writer)
        put = asyncio.ensure_future(writer.put(record(handed)))
        await asyncio.sleep(0.1)
        stop = asyncio.Event()
        stop.set()
        writer.interrupt()
        assert await put is False  # no room and a signal: that record is dropped
        clock.now += 2.0  # the grace counts from the signal
        closing = asyncio.ensure_future(writer.close(stop=stop, grace=30.0))
        await asyncio.sleep(0.3)
        assert not closing.done(), "the writer is abandoned only when the grace is over"
        assert clock.jump()  # the grace's timer, 28 s after the close began
        finished = await closing
        journal.close()
        return clock.elapsed(), stats, finished

    waited, stats, finished = asyncio.run(main())
    assert finished is False
    assert waited == 30.0
    # What the pipe holds now is what a reader would ever get: whole lines, each journaled.
    data = os.read(read_end, unread(read_end))
    received = [line["url"] for line in jsonl(data)]
    journaled = journal_path.read_text().splitlines()
    assert received
    assert received == journaled
    assert stats.done == len(received)


@pytest.mark.parametrize("empty", [True, False])
def test_pipe_writes_are_batches_of_whole_lines_the_pipe_takes_at_once(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch, empty: bool
) -> None:
    read_end, write_end = pipe
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1 << 20)
    if not empty:
        os.write(write_end, b"#\n")  # never read: the pipe is never empty
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        if fd == write_end:
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr("afetch.output.whole_lines.os.write", spy)

    async def main() -> None:
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(stream, JsonLinesSink(stream), stats=Stats(), limit=1000)
        for i in range(500):
            assert writer.offer(record(i))
        assert await writer.close(stop=asyncio.Event(), grace=1.0)

    asyncio.run(main())
    assert all(chunk.endswith(b"\n") for chunk in writes)
    if empty:
        # An empty pipe takes a whole batch in one write.
        assert len(writes) < 50
        assert max(map(len, writes)) > PIPE_BUF
    else:
        # Otherwise only PIPE_BUF bytes are sure to go at once: at most that, but still batched.
        assert len(writes) < 500
        assert max(map(len, writes)) <= PIPE_BUF
    data = os.read(read_end, 1 << 20)
    assert len(jsonl(data if empty else data.removeprefix(b"#\n"))) == 500


def test_a_line_longer_than_pipe_buf_waits_for_an_empty_pipe(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, b"x" * 100)  # something unread already

    async def main() -> RecordWriter:
        stream = os.fdopen(write_end, "wb", closefd=False)
        writer = RecordWriter(stream, JsonLinesSink(stream), stats=Stats())
        assert writer.offer(record(1, url_size=3 * PIPE_BUF))
        await asyncio.sleep(0.3)
        assert unread(read_end) == 100, "a long line must not start while the pipe is not empty"
        assert os.read(read_end, 100) == b"x" * 100
        assert await writer.close(stop=asyncio.Event(), grace=1.0)
        return writer

    asyncio.run(main())
    (line,) = jsonl(os.read(read_end, 1 << 20))
    assert line["url"] == record(1, url_size=3 * PIPE_BUF).url


def test_a_failing_output_is_raised_on_the_loop() -> None:
    async def main() -> None:
        with open("/dev/full", "wb") as stream:
            writer = RecordWriter(stream, CsvSink(stream), stats=Stats())
            writer.offer(record(1))
            await writer.close(stop=asyncio.Event(), grace=1.0)
            with pytest.raises(OutputFailed):
                writer.check()
            with pytest.raises(OutputFailed):
                writer.offer(record(2))

    asyncio.run(main())


# --- the CLI as a subprocess --------------------------------------------------------------------


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_a_stall(state: Path, *, quiet_for: float = 1.0, timeout: float = 60) -> int:
    """Wait until the journal stops growing (the reader is not reading); its line count."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = line_count(state)
        if count != last:
            last, since = count, time.monotonic()
        elif count and time.monotonic() - since >= quiet_for:
            return count
        time.sleep(0.05)
    raise AssertionError("the run never stalled")


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(3000, id="stuck-handing-over"),  # far more than pipe + hand-off
        pytest.param(300, id="stuck-at-the-end"),  # all fetched, the writer still stuck
    ],
)
def test_a_stalled_reader_pauses_fetching_and_sigint_still_stops_at_once(
    fresh_stats: LoopbackServer, tmp_path: Path, count: int
) -> None:
    server = fresh_stats
    urls = [server.url(f"/ok?size=300&stall={count}-{i}") for i in range(count)]
    sources = tmp_path / "urls.txt"
    sources.write_text("".join(f"{url}\n" for url in urls))
    state = tmp_path / "state"
    concurrency = 20
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reader:
        process = subprocess.Popen(
            [*AFETCH, str(sources), "-c", str(concurrency), "--state", str(state)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        os.close(write_end)
        journaled = wait_for_a_stall(state)
        requests = server.stats.requests
        assert journaled < count
        if count > 2 * HANDOFF_RECORDS:
            # Backpressure: fetching paused at what the pipe, the hand-off and the slots hold.
            assert requests <= journaled + HANDOFF_RECORDS + 3 * concurrency, requests
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(15)
        took = time.monotonic() - sent
        err = process.stderr.read().decode() if process.stderr else ""
        received = jsonl(reader.read())  # whole lines only, or this fails
    assert process.returncode == 130, err
    # Promised: about a second (the stuck writer would hold it forever); 5x for a loaded machine.
    assert took < 5.0, f"took {took:.2f} s to stop"
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    # Journaled exactly when written; the summary counts what was written, nothing more.
    assert {r["url"] for r in received} == set(state.read_text().splitlines())
    assert f"{len(received)} done" in err, err

    out2 = tmp_path / "run2.jsonl"
    resumed = subprocess.run(
        [*AFETCH, str(sources), "-q", "--state", str(state), "--resume", "-o", str(out2)],
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    second = jsonl(out2.read_bytes())
    assert {r["url"] for r in received} | {r["url"] for r in second} == set(urls)
    assert len(received) + len(second) == count  # nothing twice either


@pytest.mark.parametrize("extra", [(), ("--format", "csv"), ("--ordered",)])
def test_head_still_ends_the_run_quietly_with_141(
    server: LoopbackServer, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    sources = tmp_path / "urls.txt"
    sources.write_text("".join(f"{server.url('/ok?size=10')}&i={i}\n" for i in range(2000)))
    shell = (
        f"{sys.executable} -m afetch {sources} -c 20 {' '.join(extra)} | head -3; "
        'echo "exit=${PIPESTATUS[0]}" >&2'
    )
    result = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert result.stdout.count("\n") == 3
    assert result.stderr.strip() == "exit=141", result.stderr


def test_a_full_disk_is_one_line_exit_74_and_nothing_journaled(
    server: LoopbackServer, tmp_path: Path
) -> None:
    sources = tmp_path / "urls.txt"
    sources.write_text("".join(f"{server.url('/ok')}?i={i}\n" for i in range(200)))
    state = tmp_path / "state"
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "afetch", str(sources), "-c", "20", "--state", str(state)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=60,
        )
    assert result.returncode == 74
    assert result.stderr.startswith("afetch: error: cannot write records:"), result.stderr
    assert result.stderr.count("\n") == 1
    assert state.read_text() == ""
