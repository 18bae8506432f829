"""``--report KIND=PATH``: each kind checked by a reader that is not afetch's, stopped runs
included, paths checked, passwords masked, memory flat for a long junit report.

prom is parsed by prometheus_client's parser, junit validated against tests/junit.xsd
(xmlschema), json against docs/summary.schema.json (jsonschema).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afetch._errors import FetchError
from afetch._loopback import LoopbackServer
from afetch._record import Record
from afetch._stats import Stats
from afetch.reports.collect import Reports
from afetch.reports.prom import label_value
from tests.cli_run import afetch_cli, cli_env, jsonl

ROOT = Path(__file__).resolve().parent.parent
JUNIT_XSD = ROOT / "tests" / "junit.xsd"
SUMMARY_SCHEMA = ROOT / "docs" / "summary.schema.json"
PASSWORD = "s3cret-Pw-42"

parser = pytest.importorskip("prometheus_client.parser")
xmlschema = pytest.importorskip("xmlschema")
jsonschema = pytest.importorskip("jsonschema")


def metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of a Prometheus text, by name then by its labels but ``run``."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "run"))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def check_junit(path: Path) -> Any:
    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    schema.validate(str(path))
    import xml.etree.ElementTree as ET

    return ET.parse(path).getroot()


def check_json(path: Path) -> dict[str, Any]:
    summary = json.loads(path.read_text(encoding="utf-8"))
    schema = json.loads(SUMMARY_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(summary, schema)
    return summary


def report_args(folder: Path, name: str = "run") -> list[str]:
    return [
        *("--report", f"prom={folder / (name + '.prom')}"),
        *("--report", f"junit={folder / (name + '.xml')}"),
        *("--report", f"json={folder / (name + '.json')}"),
        *("--report", f"md={folder / (name + '.md')}"),
    ]


def with_password(url: str) -> str:
    return url.replace("http://", f"http://ann:{PASSWORD}@")


def test_every_kind_is_read_back_by_its_own_reader(server: LoopbackServer, tmp_path: Path) -> None:
    urls = [
        server.url("/ok"),
        server.url("/redirect/1"),
        server.url("/status/404"),
        server.url("/garbage"),
        with_password(server.url("/status/500")),
        with_password(server.url("/ok")),
    ]
    out = tmp_path / "reports"  # made by afetch, as -o's folder is
    before = time.time()
    result = afetch_cli(
        "-", "-q", "--retries", "0", *report_args(out), stdin="".join(f"{u}\n" for u in urls)
    )
    assert result.returncode == 1, result.stderr
    assert len(jsonl(result.stdout)) == len(urls)
    assert sorted(os.listdir(out)) == ["run.json", "run.md", "run.prom", "run.xml"]  # no temp

    found = metrics((out / "run.prom").read_text(encoding="utf-8"))
    assert found["afetch_urls"][()] == 6
    assert found["afetch_urls_not_ok"][()] == 3
    assert found["afetch_urls_by_class"][(("class", "2xx"),)] == 3
    assert found["afetch_urls_by_class"][(("class", "4xx"),)] == 1
    assert found["afetch_urls_by_class"][(("class", "errors"),)] == 1
    assert found["afetch_errors"][(("type", "protocol"),)] == 1
    assert found["afetch_errors"][(("type", "timeout"),)] == 0  # every type, zeros included
    assert found["afetch_last_run_exit_code"][()] == 1
    assert before <= found["afetch_last_run_timestamp_seconds"][()] <= time.time()
    assert found["afetch_url_elapsed_seconds_count"][()] == 6
    assert found["afetch_url_elapsed_seconds_bucket"][(("le", "+Inf"),)] == 6

    root = check_junit(out / "run.xml")
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("6", "3")
    cases = suite.findall("testcase")
    assert len(cases) == 6
    failed = {
        case.get("name"): case.find("failure") for case in cases if case.find("failure") is not None
    }
    assert {f.get("type") for f in failed.values()} == {"http_404", "protocol", "http_500"}

    summary = check_json(out / "run.json")
    assert summary["urls"]["done"] == 6
    assert summary["urls"]["not_ok"] == 3
    assert summary["statuses"] == {"200": 3, "404": 1, "500": 1}
    assert summary["exit_code"] == 1
    assert summary["signal"] is None
    assert len(summary["failures"]) == 3
    assert summary["worst_hosts"] == [{"host": f"http://127.0.0.1:{server.port}", "not_ok": 3}]

    markdown = (out / "run.md").read_text(encoding="utf-8")
    assert markdown.startswith("## afetch: 6 URLs, 3 not ok")

    for name in os.listdir(out):
        text = (out / name).read_text(encoding="utf-8")
        assert PASSWORD not in text, name
    assert "ann:***@" in (out / "run.xml").read_text(encoding="utf-8")


def test_reports_count_changes_and_judge_ok_as_the_run_does(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """With --history the reports count each ``change``; with --accept a status it makes ok is
    no failure in them either (the run's one verdict, as the summary and the exit code)."""
    urls = "".join(f"{server.url(p)}\n" for p in ("/ok", "/status/429", "/status/500"))
    args = ["-q", "--retries", "0", "--history", str(tmp_path / "h.db"), "--accept", "200-299,429"]
    for night in ("first", "second"):
        result = afetch_cli(*args, *report_args(tmp_path, night), stdin=urls)
        assert result.returncode == 1, result.stderr
    first, second = (check_json(tmp_path / f"{night}.json") for night in ("first", "second"))
    assert first["changes"] == {"new": 3}
    assert second["changes"] == {"same": 3}
    assert second["urls"]["not_ok"] == 1
    assert [(f["status"], f["change"]) for f in second["failures"]] == [(500, "same")]
    assert second["worst_hosts"] == [{"host": f"http://127.0.0.1:{server.port}", "not_ok": 1}]
    found = metrics((tmp_path / "second.prom").read_text(encoding="utf-8"))
    assert found["afetch_changes"] == {(("change", "same"),): 3}
    root = check_junit(tmp_path / "second.xml")
    assert root.find("testsuite").get("failures") == "1"


def test_a_report_replaces_the_previous_one_by_a_rename(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """node_exporter's rule: a reader sees the old file or the new one, never half of one."""
    report = tmp_path / "afetch.prom"
    report.write_text("old\n")
    kept = tmp_path / "old-link"
    os.link(report, kept)  # a rename leaves this inode alone; writing in place would not
    result = afetch_cli("-", "-q", "--report", f"prom={report}", stdin=server.url("/ok") + "\n")
    assert result.returncode == 0, result.stderr
    assert kept.read_text() == "old\n"
    assert "afetch_urls" in report.read_text()
    assert sorted(os.listdir(tmp_path)) == ["afetch.prom", "old-link"]


@pytest.mark.posix
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_writes_its_reports(
    server: LoopbackServer, tmp_path: Path, signum: int, code: int
) -> None:
    urls = [server.url("/ok")] * 5 + [server.url("/hang")] * 20
    (tmp_path / "urls.txt").write_text("".join(f"{u}\n" for u in urls))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "afetch",
            "urls.txt",
            "-c",
            "10",
            "--timeout",
            "60",
            *report_args(tmp_path),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert process.stdout is not None
    head = b"".join(process.stdout.readline() for _ in range(5))  # the /ok ones are done
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(signum)
    rest, err = process.communicate(timeout=15)
    assert process.returncode == code, err.decode()
    assert time.monotonic() - sent < 2.0  # the reports do not hold up the stop
    written = len(jsonl(head + rest))
    summary = check_json(tmp_path / "run.json")
    assert summary["signal"] == signal.Signals(signum).name
    assert summary["exit_code"] == code
    assert summary["urls"]["done"] == written >= 5
    found = metrics((tmp_path / "run.prom").read_text(encoding="utf-8"))
    assert found["afetch_last_run_exit_code"][()] == code
    suite = check_junit(tmp_path / "run.xml").find("testsuite")
    assert suite.get("tests") == str(written)
    assert "Stopped by" in (tmp_path / "run.md").read_text(encoding="utf-8")
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "json=urls.txt"], "is also an input file (urls.txt)"),
        (["-o", "out.jsonl", "--report", "json=out.jsonl"], "is also the --report json=out.jsonl"),
        (["--state", "s.txt", "--report", "md=s.txt"], "is also the --report md=s.txt"),
        (["--report", "json=r", "--report", "md=r"], "--report json=r is also the --report md=r"),
        (["--report", "prom=."], "is a folder"),
        (["--report", "prom=urls.txt/x.prom"], "cannot create urls.txt"),
        (["--report", "xml=x.xml"], "unknown report kind 'xml'"),
        (["--report", "json"], "expected KIND=PATH"),
        (["--report", "json=-"], "stdout carries only records"),
    ],
)
def test_report_paths_are_checked_before_the_run(
    server: LoopbackServer, tmp_path: Path, args: list[str], message: str
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/ok") + "\n")
    before = sorted(os.listdir(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "afetch", "urls.txt", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert urls.read_text() == server.url("/ok") + "\n"
    assert sorted(os.listdir(tmp_path)) == before  # no report, no temporary file


def test_github_actions_gets_the_job_summary_and_capped_annotations(
    server: LoopbackServer, tmp_path: Path
) -> None:
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    urls = [with_password(server.url(f"/status/{404 + i % 2}?n={i}")) for i in range(14)]
    result = afetch_cli(
        "-",
        "--retries",
        "0",
        "--progress",
        stdin="".join(f"{u}\n" for u in urls),
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step_summary)},
    )
    assert result.returncode == 1, result.stderr
    text = step_summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## afetch: 14 URLs, 14 not ok")  # appended
    errors = [line for line in result.stderr.splitlines() if line.startswith("::error ")]
    assert len(errors) == 11  # ten URLs, then how many more
    assert errors[0].startswith("::error title=afetch%3A http_40")
    assert errors[-1] == "::error title=afetch::4 more URLs not ok (see the job summary)"
    assert "\x1b[" not in result.stderr  # plain progress lines, no live table
    for text in (result.stderr, step_summary.read_text()):
        assert PASSWORD not in text


def test_no_report_no_github_files_without_the_variable(
    server: LoopbackServer, tmp_path: Path
) -> None:
    result = afetch_cli("-", stdin=server.url("/status/404") + "\n", env={"GITHUB_ACTIONS": ""})
    assert result.returncode == 1
    assert "::error" not in result.stderr


def test_an_unwritable_report_at_the_end_is_exit_74(server: LoopbackServer, tmp_path: Path) -> None:
    """The folder vanishing mid-run (as a full disk would): the error says which report, the
    records are all there, and the other reports are written."""
    gone = tmp_path / "gone"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n{server.url('/sleep/1500')}\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "afetch",
            str(urls),
            "--report",
            f"json={gone / 'r.json'}",
            "--report",
            f"md={tmp_path / 'r.md'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert process.stdout is not None
    process.stdout.readline()  # under way: the temporary files exist
    for name in os.listdir(gone):
        os.unlink(gone / name)
    gone.rmdir()
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 74, err.decode()
    assert f"afetch: error: cannot write --report json={gone / 'r.json'}" in err.decode()
    assert (tmp_path / "r.md").exists()


def test_every_kind_has_its_row_in_the_docs() -> None:
    from afetch.reports import KINDS
    from tests.test_docs import table_column

    page = (ROOT / "docs" / "watching.md").read_text(encoding="utf-8")
    assert table_column(page, "## Reports: `--report KIND=PATH`") == list(KINDS)


# -- the writers on their own -------------------------------------------------------------------


@given(st.text())
def test_a_label_value_reads_back_as_written(text: str) -> None:
    line = f"m{{run={label_value(text)}}} 1\n"
    (family,) = parser.text_string_to_metric_families(line)
    expected = text.encode("utf-8", "replace").decode("utf-8")
    assert family.samples[0].labels["run"] == expected


@given(
    st.sampled_from(["http", "https", "HTTP", "ftp"]),
    st.from_regex(r"[a-zA-Z0-9.\-\[\]:@]{0,12}", fullmatch=True),
    st.sampled_from(["", ":", ":0", ":80", ":443", ":8080", ":65535", ":65536", ":99999", ":x"]),
    st.sampled_from(["", "/", "/a", "?q", "#f", "\\x"]),
)
def test_host_of_is_the_scheduler_host_key(scheme: str, host: str, port: str, rest: str) -> None:
    """The fast path for plain URLs says what afetch.schedule.hosts.host_key says."""
    from afetch.reports.summary import host_of
    from afetch.schedule.hosts import host_key

    url = f"{scheme}://{host}{port}{rest}"
    key = host_key(url)
    if key is None:
        assert host_of(url) == "(no host)"
    else:
        name = f"[{key[1]}]" if ":" in key[1] else key[1]
        assert host_of(url) == f"{key[0]}://{name}:{key[2]}"


def hostile(i: int, text: str) -> Record:
    return Record(
        url=f"http://u:{PASSWORD}@h{i}.test/{text}",
        status=None if i % 3 else 404,
        error=FetchError("other", f"{text} http://u:{PASSWORD}@h/") if i % 3 else None,
        elapsed_ms=float(i),
        started_at="2026-01-01T00:00:00.000Z",
    )


@settings(deadline=None)  # each example validates a file against an XSD
@given(st.lists(st.text(), max_size=8))
def test_junit_stays_valid_xml_whatever_the_urls_and_messages_hold(texts: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "j.xml"
        reports = Reports([("junit", str(path))], env={}, quiet=True)
        records = [hostile(i, text) for i, text in enumerate(texts)]
        stats = Stats()
        stats.add_many(records)
        reports.add_many(records)
        assert reports.finish(stats, exit_code=1, signal=None) == []
        root = check_junit(path)
        assert len(root.findall(".//testcase")) == len(texts)
        assert PASSWORD not in path.read_text(encoding="utf-8")


@pytest.mark.posix
def test_a_junit_report_of_200000_urls_streams(tmp_path: Path) -> None:
    """The testcases go to disk as they come: the peak memory of 200,000 records fed through
    the reports is within a few MB of that of 2,000 (held, they would take tens of MB)."""
    probe = textwrap.dedent(
        """
        import resource, sys
        from afetch._errors import FetchError
        from afetch._record import Record
        from afetch._stats import Stats
        from afetch.reports.collect import Reports
        count, path = int(sys.argv[1]), sys.argv[2]
        reports = Reports([("junit", path), ("json", path + ".json")], env={}, quiet=True)
        stats = Stats()
        for start in range(0, count, 256):
            batch = [
                Record(url=f"https://host{i % 5000}.example/some/path/{i}?q={i}",
                       status=200 if i % 7 else 503, elapsed_ms=float(i % 900),
                       error=None if i % 11 else FetchError("timeout", "timed out after 30 s"))
                for i in range(start, min(start + 256, count))
            ]
            stats.add_many(batch)
            reports.add_many(batch)
        assert reports.finish(stats, exit_code=1, signal=None) == []
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )

    def peak_kb(count: int) -> int:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(count), str(tmp_path / f"{count}.xml")],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return int(done.stdout.split()[-1])

    small, large = peak_kb(2_000), peak_kb(200_000)
    assert (tmp_path / "200000.xml").stat().st_size > 20_000_000  # the testcases are there
    assert large - small < 8 * 1024, f"{small} KB for 2,000 URLs, {large} KB for 200,000"
