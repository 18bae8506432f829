"""Opt: one command-line option, declared once (its flags, type, default, help); the
environment variable, the ``--help`` panel and the field it fills follow from it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import typer

from afetch.cli.usage import Number

ENV_PREFIX = "AFETCH_"


class Opt(NamedTuple):
    """One command-line option (a NamedTuple, not a frozen dataclass: the same value without
    generated code to compile at every start).

    >>> spec = opt("--max-host-errors", type=int | None, default=None, help="K failures.")
    >>> spec.name, spec.envvar, spec.field
    ('max_host_errors', 'AFETCH_MAX_HOST_ERRORS', 'max_host_errors')
    >>> opt("--follow/--no-follow", type=bool, default=True, help="", to="follow_redirects").field
    'follow_redirects'
    """

    #: click's flags: ``("-c", "--concurrency")`` or ``("--follow/--no-follow",)``.
    decls: tuple[str, ...]
    type: Any
    default: Any
    help: str
    #: More keywords for ``typer.Option`` (``min``, ``show_default``, ``case_sensitive``, ...).
    click: dict[str, Any]
    metavar: str | None = None
    #: The Settings or RunOptions field this option fills, when it is not ``name``.
    to: str | None = None
    #: Turns the parsed value into the field's value; raises typer.BadParameter if it cannot.
    convert: Callable[[Any], Any] | None = None
    #: False for an option without an environment variable (``--version``).
    env: bool = True
    #: The ``--help`` panel; set from the key of :data:`PANELS`.
    panel: str = ""

    @property
    def long(self) -> str:
        """``concurrency`` for ``--concurrency``, ``follow`` for ``--follow/--no-follow``."""
        first = next(decl for decl in self.decls if decl.startswith("--"))
        return first.split("/")[0].removeprefix("--")

    @property
    def name(self) -> str:
        """The Python name of the parameter."""
        return self.long.replace("-", "_")

    @property
    def field(self) -> str:
        return self.to or self.name

    @property
    def envvar(self) -> str | None:
        return ENV_PREFIX + self.name.upper() if self.env else None

    def parameter(self) -> inspect.Parameter:
        """The keyword parameter Typer builds the click option from."""
        click = dict(self.click)
        if self.type in _NUMBERS:
            # Bounds and errors that say what the number counts (afetch.cli.usage).
            kind = _NUMBERS[self.type]
            low, high = click.pop("min", None), click.pop("max", None)
            click["click_type"] = Number(kind, self.metavar, low, high)
        info = typer.Option(
            *self.decls,
            metavar=self.metavar,
            envvar=self.envvar,
            help=self.help,
            rich_help_panel=self.panel or None,
            **click,
        )
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=self.default,
            annotation=Annotated[self.type, info],
        )

    def value(self, raw: Any) -> Any:
        return raw if self.convert is None else self.convert(raw)


_NUMBERS: dict[Any, type] = {int: int, float: float, int | None: int, float | None: float}

_OWN = frozenset(Opt._fields) - {"decls", "type", "default", "help", "click"}


def opt(*decls: str, type: Any, default: Any, help: str, **keywords: Any) -> Opt:
    """An :class:`Opt`; keywords that are not its fields go to ``typer.Option``."""
    own = {key: keywords.pop(key) for key in list(keywords) if key in _OWN}
    return Opt(decls, type, default, help, click=keywords, **own)
