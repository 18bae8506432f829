"""The command line's words: usage errors, suggestions, the usage line, --help at 80 columns and
shell completion, through the real command."""

from __future__ import annotations

import re

import pytest

from tests.cli_run import afetch_cli
from tests.test_docs import README, cli_options

DOCS_OPTIONS = README.parent / "docs" / "options.md"


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--timeout", "abc"], {}, "--timeout: 'abc' is not a number of seconds"),
        (["-c", "many"], {}, "--concurrency: 'many' is not a whole number"),
        (["-c", "0"], {}, "--concurrency: must be at least 1, got 0"),
        (["--rate", "0"], {}, "--rate: must be at least 0.001, got 0"),
        (["--timeout", "inf"], {}, "--timeout: 'inf' is not a finite number"),
        ([], {"AFETCH_TIMEOUT": "soon"}, "--timeout (from AFETCH_TIMEOUT): 'soon' is not a number"),
        (["--concurency", "5"], {}, "no such option: --concurency (did you mean --concurrency?)"),
        (["--retrie", "3"], {}, "no such option: --retrie (did you mean --retries?)"),
        (["--time", "3"], {}, "no such option: --time (did you mean --timeout?)"),
        (["--bogus"], {}, "no such option: --bogus (see afetch --help)"),
        (["--resume"], {}, "--resume: needs --state FILE"),
    ],
)
def test_a_usage_error_is_one_line_that_says_what_is_wanted(
    args: list[str], env: dict[str, str], line: str
) -> None:
    result = afetch_cli(*args, "urls.txt", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"afetch: error: {line}"), result.stderr
    # Not click's words: its type names, nor a suggestion that only shares the leading "--".
    assert "range" not in result.stderr
    assert "Invalid value" not in result.stderr
    assert "--insecure" not in result.stderr


def test_the_usage_line_is_the_same_in_help_and_docs() -> None:
    usage = afetch_cli("--help").stdout.splitlines()[0]
    assert usage.startswith("Usage: afetch ")
    for page in (README, DOCS_OPTIONS):
        blocks = re.findall(r"^```\n(afetch [^\n]*)\n```", page.read_text("utf-8"), re.M)
        assert blocks == [usage.removeprefix("Usage: ")], page.name


@pytest.mark.parametrize("columns", ["80", "60"])
def test_help_fits_the_terminal(columns: str) -> None:
    help_text = afetch_cli("--help", env={"COLUMNS": columns}).stdout
    assert "--concurrency" in help_text
    # 80 columns at most, even on a narrower terminal (click wraps to at least 50).
    limit = max(int(columns), 50)
    assert [line for line in help_text.splitlines() if len(line) > limit] == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts_and_answers(shell: str) -> None:
    # What docs/options.md tells users to put in their shell's start-up files.
    assert f"_AFETCH_COMPLETE=source_{shell} afetch" in DOCS_OPTIONS.read_text("utf-8")
    script = afetch_cli(env={"_AFETCH_COMPLETE": f"source_{shell}"})
    assert script.returncode == 0, script.stderr
    assert "_AFETCH_COMPLETE=complete_" in script.stdout
    # What that script asks afetch when Tab is pressed after `afetch --con`.
    ask = {
        "bash": {"COMP_WORDS": "afetch --con", "COMP_CWORD": "1"},
        "zsh": {"_TYPER_COMPLETE_ARGS": "afetch --con"},
        "fish": {"_TYPER_COMPLETE_ARGS": "afetch --con", "_TYPER_COMPLETE_FISH_ACTION": "get-args"},
    }[shell]
    answer = afetch_cli(env={"_AFETCH_COMPLETE": f"complete_{shell}", **ask})
    assert answer.returncode == 0, answer.stderr
    offered = set(re.findall(r"--[a-z-]+", answer.stdout))
    assert {"--concurrency", "--connect-timeout"} <= offered <= set(cli_options())
