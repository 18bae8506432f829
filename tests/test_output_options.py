"""--format csv, --ordered, and AFETCH_* variables for every option."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import httpx
import typer

import afetch
from afetch._loopback import LoopbackServer
from afetch.cli.command import app
from afetch.output.sinks import CSV_BASE_COLUMNS
from afetch.schedule.ordering import WINDOW_FACTOR
from tests.cli_run import afetch_cli, jsonl


def test_csv_has_a_header_and_flattened_errors(server: LoopbackServer) -> None:
    urls = [server.url("/ok?size=3"), "not a url", server.url("/status/503")]
    result = afetch_cli("-q", "--format", "csv", stdin="\n".join(urls) + "\n")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_BASE_COLUMNS
    by_url = {row["url"]: row for row in rows}
    assert len(by_url) == 3
    assert (by_url[urls[0]]["status"], by_url[urls[0]]["ok"], by_url[urls[0]]["bytes"]) == (
        "200",
        "true",
        "3",
    )
    assert by_url[urls[0]]["error_type"] == ""
    assert by_url[urls[1]]["error_type"] == "invalid_url"
    assert by_url[urls[1]]["error_message"]
    assert (by_url[urls[1]]["status"], by_url[urls[1]]["ok"]) == ("", "false")
    assert by_url[urls[2]]["status"] == "503"


def test_csv_gains_the_optional_columns_of_the_options_on(server: LoopbackServer) -> None:
    result = afetch_cli("-q", "--format", "csv", "--hash", stdin=server.url("/ok") + "\n")
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert header == [*CSV_BASE_COLUMNS, "sha256"]


def test_csv_from_the_environment_and_no_second_header_when_appending(
    tmp_path: Path, server: LoopbackServer
) -> None:
    out = tmp_path / "out.csv"
    env = {"AFETCH_FORMAT": "csv", "AFETCH_OUTPUT": str(out)}
    state = tmp_path / "state"
    first = afetch_cli("-q", "--state", str(state), stdin=server.url("/ok?a=1") + "\n", env=env)
    assert first.returncode == 0, first.stderr
    # As a run stopped before its end leaves it (a finished run's journal starts a new run).
    state.write_text(state.read_text().removesuffix(" finished\n"))
    urls = server.url("/ok?a=1") + "\n" + server.url("/ok?a=2") + "\n"
    second = afetch_cli("-q", "--state", str(state), "--resume", stdin=urls, env=env)
    assert second.returncode == 0, second.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0][0] == "url"
    assert [row[0] for row in rows[1:]] == [server.url("/ok?a=1"), server.url("/ok?a=2")]


def test_ordered_output_follows_the_input(server: LoopbackServer) -> None:
    # Later URLs answer sooner, so completion order is the reverse of input order.
    urls = [server.url(f"/sleep/{(12 - i) * 25}/ord-{i}") for i in range(12)]
    result = afetch_cli("-q", "-c", "12", "--ordered", stdin="\n".join(urls) + "\n")
    assert [r["url"] for r in jsonl(result.stdout)] == urls


def test_a_slow_head_pauses_scheduling_at_the_window() -> None:
    concurrency = 2
    window = concurrency * WINDOW_FACTOR

    async def run() -> None:
        started: list[str] = []
        release = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            started.append(request.url.path)
            if request.url.path == "/slow":
                await release.wait()
            return httpx.Response(200)

        urls = ["http://t.test/slow"] + [f"http://t.test/{i}" for i in range(200)]
        got: list[str] = []

        async def consume() -> None:
            transport = httpx.MockTransport(handler)
            options = {"concurrency": concurrency, "ordered": True}
            async for record in afetch.fetch(urls, transport=transport, **options):
                got.append(record.url)

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):  # the window fills (a loaded machine may take a while)
            while len(started) < window:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # time enough for more to start, if anything would
        # Bounded: the slow head holds the window; nothing beyond it has started.
        assert len(started) == window
        assert got == []
        release.set()
        await task
        assert got == urls

    asyncio.run(run())


def test_ordered_interruption_still_yields_finished_records_in_order() -> None:
    async def run() -> list[str]:
        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/slow":
                await asyncio.sleep(30)
            return httpx.Response(200)

        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        urls = ["http://t.test/0", "http://t.test/slow", "http://t.test/2", "http://t.test/3"]
        transport = httpx.MockTransport(handler)
        return [
            r.url async for r in afetch.fetch(urls, transport=transport, stop=stop, ordered=True)
        ]

    assert asyncio.run(run()) == ["http://t.test/0", "http://t.test/2", "http://t.test/3"]


def test_every_option_has_an_afetch_variable_listed_in_help() -> None:
    command = typer.main.get_command(app)
    result = afetch_cli("--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    checked = 0
    for param in command.params:
        if param.param_type_name != "option" or param.name in ("help", "version"):
            continue
        assert isinstance(param.envvar, str), param.name
        assert param.envvar.startswith("AFETCH_"), param.name
        assert param.envvar in help_text, param.name
        checked += 1
    for variable in ("AFETCH_STATE", "AFETCH_RESUME", "AFETCH_CACHE", "AFETCH_SAVE_DIR"):
        assert variable in help_text
    for variable in ("AFETCH_HASH", "AFETCH_ORDERED", "AFETCH_FORMAT", "AFETCH_SHARD"):
        assert variable in help_text
    assert checked >= 20


def test_options_come_from_the_environment(server: LoopbackServer) -> None:
    urls = [server.url(f"/sleep/{(6 - i) * 30}/env-{i}") for i in range(6)]
    result = afetch_cli(
        stdin="\n".join(urls) + "\n",
        env={"AFETCH_ORDERED": "1", "AFETCH_HASH": "true", "AFETCH_QUIET": "1"},
    )
    records = jsonl(result.stdout)
    assert [r["url"] for r in records] == urls
    assert all(r["sha256"] for r in records)
    assert result.stderr == ""


def test_csv_of_an_empty_list_is_the_header_alone() -> None:
    result = afetch_cli("-q", "--format", "csv", stdin="")
    assert result.returncode == 0
    assert result.stdout == ",".join(CSV_BASE_COLUMNS) + "\n"
