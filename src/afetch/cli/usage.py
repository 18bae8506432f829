"""Usage errors in words: numbers that say what they count, and the one line a bad command gets.

click's own wording names its types (``'abc' is not a valid float range``) and suggests any option
that shares the ``--`` (``--concurency``: ``--insecure``); these say what the option wants.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import typer

# Typer's click types: its vendored copy's, or click's for the Typers that use click.
_types: Any = importlib.import_module(typer.BadParameter.__module__.rsplit(".", 1)[0] + ".types")

#: What a number option counts, by its metavar.
_NOUNS = {"SECONDS": "a number of seconds", "R": "a number per second"}


class Number(_types.ParamType):
    """An int or float option with bounds, whose errors say what it counts.

    >>> Number(float, "SECONDS", low=0.001).convert("0.5", None, None)
    0.5
    >>> Number(float, "SECONDS", low=0.001).convert("abc", None, None)
    Traceback (most recent call last):
    ...
    typer._click.exceptions.BadParameter: 'abc' is not a number of seconds
    """

    def __init__(self, kind: type, metavar: str | None, low: Any = None, high: Any = None) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.name = "integer" if kind is int else "number"
        self.noun = _NOUNS.get(metavar or "", "a whole number" if kind is int else "a number")

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not {self.noun}", param, ctx)
        if self.kind is float and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and number < self.low:
            self.fail(f"must be at least {self.low:g}, got {value}", param, ctx)
        if self.high is not None and number > self.high:
            self.fail(f"must be at most {self.high:g}, got {value}", param, ctx)
        return number


def suggestions(wrong: str, long_options: list[str]) -> list[str]:
    """Long options close to the unknown ``wrong``, compared without their ``--``.

    >>> suggestions("--concurency", ["--concurrency", "--insecure", "--rate"])
    ['--concurrency']
    >>> suggestions("--retrie", ["--rate", "--resume", "--retries"])
    ['--retries']
    >>> suggestions("--time", ["--timeout", "--connect-timeout"])
    ['--timeout']
    """
    from difflib import get_close_matches  # only for a mistyped option

    names = {option.removeprefix("--"): option for option in long_options}
    stem = wrong.removeprefix("--")
    close = [name for name in names if name.startswith(stem)][:3]  # --time: --timeout
    close = close or get_close_matches(stem, list(names), n=3, cutoff=0.75)
    return [names[name] for name in close]


def usage_message(exc: Any, long_options: list[str]) -> str:
    """The text of a usage error, without click's type names or its ``Invalid value for``."""
    if hasattr(exc, "possibilities"):  # an unknown option (click's NoSuchOption)
        wrong = exc.option_name
        close = suggestions(wrong, long_options) if wrong.startswith("--") else []
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"no such option: {wrong}{hint}"
    param, hint = getattr(exc, "param", None), getattr(exc, "param_hint", None)
    if param is None and hint is None:
        return exc.format_message()
    if hint is None:
        names = [*param.opts] or [param.human_readable_name]
    else:
        names = hint if isinstance(hint, list | tuple) else hint.split(" / ")
    name = names[-1].strip("'\"")  # the long name: '-c' / '--concurrency' is --concurrency
    source = ""
    ctx = getattr(exc, "ctx", None)
    if param is not None and ctx is not None and isinstance(param.envvar, str):
        origin = ctx.get_parameter_source(param.name)
        if origin is not None and origin.name == "ENVIRONMENT":
            source = f" (from {param.envvar})"
    return f"{name}{source}: {exc.message}"
