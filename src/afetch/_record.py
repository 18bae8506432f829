"""The record: what afetch says about one input URL."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# Defined with the error types (the engines raise them and know nothing of records); a
# record carries one.
from afetch._errors import FetchError
from afetch._include import DEFAULTS as _INCLUDE_DEFAULTS

#: The documented record keys, always present, in this order (README.md, "Records").
SCHEMA_KEYS = (
    "url",
    "final_url",
    "status",
    "ok",
    "error",
    "elapsed_ms",
    "bytes",
    "content_type",
    "http_version",
    "redirects",
    "attempts",
    "started_at",
)
#: Keys that follow the schema keys only when the option that fills them is on, in this order:
#: ``not_modified`` with ``--cache``; ``path`` with ``--save-dir``; ``sha256`` with ``--hash`` or
#: ``--save-dir``; ``method`` with ``-X``, ``-d`` or ``--json``. ``method`` and ``meta`` are also
#: on each record of a request object (an input line starting with ``{``), whatever the options.
#: ``confirmed`` with ``--confirm``.
OPTIONAL_KEYS = ("not_modified", "path", "sha256", "method", "meta", "confirmed")
#: Optional keys a record may carry on its own (from its request object), not only run-wide.
_PER_REQUEST_KEYS = frozenset({"method", "meta"})
#: Keys ``--history`` adds last, in this order (afetch.watch: what changed since the last run).
WATCH_KEYS = ("change", "streak", "since")


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """The outcome of one input URL; serialised as one JSON Lines record.

    >>> r = Record(url="http://127.0.0.1/", status=200, started_at="2026-01-01T00:00:00.000Z")
    >>> r.ok, r.to_dict()["status"]
    (True, 200)
    """

    url: str
    final_url: str | None = None
    status: int | None = None
    error: FetchError | None = None
    elapsed_ms: float = 0.0
    bytes: int = 0
    content_type: str | None = None
    http_version: str | None = None
    redirects: int = 0
    attempts: int = 1
    started_at: str = ""
    #: With ``--cache``: the server answered 304 to a conditional request.
    not_modified: bool | None = None
    #: With ``--save-dir``: where the body was saved.
    path: str | None = None
    #: With ``--hash`` or ``--save-dir``: hex SHA-256 of the body.
    sha256: str | None = None
    #: The request's method, when the run or the request object chose one (None: a plain GET).
    method: str | None = None
    #: A request object's ``meta``, copied unchanged (None: none given).
    meta: Any = None
    #: What ``--state`` journals for a request object (see ``afetch._spec.request_key``); None
    #: for a plain URL line, journaled by its URL. Not part of the output.
    key: str | None = field(default=None, repr=False, compare=False)
    #: With ``--include``: the included keys (in :data:`afetch._include.RECORD_KEYS` order) and
    #: their values. Named before the include vocabulary; kept, as documented library API.
    extra: Mapping[str, Any] | None = field(default=None, hash=False)
    #: ``ok`` as ``--accept``, ``--accept-timeouts`` or ``--ok-if`` decided it (None: the
    #: default rule, no error and a status below 400). Set by afetch.watch before the record is
    #: written; not a key of its own.
    verdict: bool | None = field(default=None, repr=False, compare=False)
    #: With ``--history``: the values of :data:`WATCH_KEYS`.
    watch: tuple[str, int, str] | None = field(default=None, hash=False)
    #: With ``--confirm``, on a record whose first outcome failed and that was tried once more
    #: at the end of the run: True if that try failed too, False if it did not (a blip). Last,
    #: so that ``new_record``'s callers need not pass it.
    confirmed: bool | None = None

    @property
    def ok(self) -> bool:
        if self.verdict is not None:
            return self.verdict
        return self.error is None and self.status is not None and self.status < 400

    def to_dict(
        self, optional: Collection[str] | None = None, include: Collection[str] = ()
    ) -> dict[str, Any]:
        """The record as the documented schema; ``optional`` names the optional keys to add,
        ``include`` the ``--include`` keys (:func:`afetch._include.record_keys`).

        Without ``optional``, the optional keys that have a value are added, so a record from a
        run with ``--cache`` or ``--save-dir`` keeps them, and so are its ``extra`` keys; sinks
        pass the keys their options turn on, so a key is present on every record of such a run
        (``null`` when it has no value).

        >>> list(Record(url="u", sha256="ab").to_dict())[-1]
        'sha256'
        >>> Record(url="u").to_dict(optional=("path",))["path"] is None
        True
        >>> list(Record(url="u", extra={"title": "T"}).to_dict((), ("body", "title")))[-2:]
        ['body', 'title']
        """
        # Key order is part of the documented schema: SCHEMA_KEYS, then the optional keys.
        data = _schema_dict(self)
        data.update(self._added(optional, include))
        return data

    def _added(self, optional: Collection[str] | None, include: Collection[str]) -> dict[str, Any]:
        """The keys after the schema's: optional keys, then ``--include`` keys (or ``extra``)."""
        added: dict[str, Any] = {}
        if optional is None:
            for key in OPTIONAL_KEYS:
                value = getattr(self, key)
                if value is not None:
                    added[key] = value
        elif optional or self.method is not None or self.meta is not None:
            # (A plain run's record skips this loop: nothing optional to add.)
            for key in OPTIONAL_KEYS:
                value = getattr(self, key)
                if key in optional or (value is not None and key in _PER_REQUEST_KEYS):
                    added[key] = value
        extra = self.extra
        if include:
            if extra is None:
                extra = _INCLUDE_DEFAULTS
            for key in include:
                added[key] = extra.get(key, _INCLUDE_DEFAULTS.get(key))
        elif optional is None and extra:
            added.update(extra)
        if self.watch is not None:
            added.update(zip(WATCH_KEYS, self.watch, strict=True))
        return added

    def to_json(
        self, optional: Collection[str] | None = None, include: Collection[str] = ()
    ) -> str:
        """The record as one line of JSON (``to_dict``'s keys, in its order).

        >>> Record(url="http://127.0.0.1/", status=200, bytes=2).to_json()[:56]
        '{"url":"http://127.0.0.1/","final_url":null,"status":200'
        """
        try:
            line = _schema_json(self)
            if optional is not None and not include and self.method is None and self.meta is None:
                watch = self.watch
                if optional:
                    tail = _optional_json(tuple(optional))
                    if tail is not None:
                        if watch is None:
                            return line + tail(self)
                        return line + tail(self)[:-1] + _watch_json(watch)
                elif watch is not None:
                    return line + _watch_json(watch)
                else:
                    return line + "}"  # a plain run's record: nothing after the schema keys
        except TypeError:  # a field that does not hold its declared type: the general way
            return _dumps(self.to_dict(optional, include))
        added = self._added(optional, include)
        # The added keys' own JSON object, without its "{", closes the line.
        return line + ("," + _dumps(added)[1:] if added else "}")


def json_lines(
    records: Iterable[Record], optional: Collection[str] = (), include: Collection[str] = ()
) -> list[bytes]:
    """Each record's :meth:`Record.to_json` line, newline ended, in UTF-8: what the writer
    thread writes, a batch at a time.

    A plain run's record (no optional or ``--include`` key, no method, meta or ``--history``
    keys) is written here without a call of its own.

    >>> json_lines([Record(url="u", status=200, started_at="t")])[0][-18:]
    b'"started_at":"t"}\\n'
    """
    if optional or include:
        return [(r.to_json(optional, include) + "\n").encode() for r in records]
    lines: list[bytes] = []
    add = lines.append
    for r in records:
        if r.method is None and r.meta is None and r.watch is None:
            try:
                add((_schema_json(r) + "}\n").encode())
                continue
            except TypeError:  # a field that does not hold its declared type: to_json's way
                pass
        add((r.to_json(optional, include) + "\n").encode())
    return lines


def _compile_schema_dict() -> Callable[[Record], dict[str, Any]]:
    """``record -> {"url": record.url, ...}`` for the SCHEMA_KEYS, in their order.

    Generated once from SCHEMA_KEYS, as dataclasses generate ``__init__``: a dict display is
    about twice as fast as building the dict in a loop, and this runs once per record.
    """
    error = "None if r.error is None else {'type': r.error.type, 'message': r.error.message}"
    items = ", ".join(f"{key!r}: {error if key == 'error' else 'r.' + key}" for key in SCHEMA_KEYS)
    # eval of the text built just above from constants, never of anything from outside.
    return eval(f"lambda r: {{{items}}}")


_schema_dict = _compile_schema_dict()


def _compile_new_record() -> Callable[..., Record]:
    """``new_record(url, final_url, ..., extra)``: a :class:`Record` from all its fields, in
    their order, as ``Record(...)`` makes it but about fifteen times faster.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``. This fills
    a twin of Record's layout (the same slots, in the same order, without the frozen
    ``__setattr__``) with plain attribute stores, which the interpreter specialises, then makes
    it a Record: ``__class__`` may be assigned between classes of one layout. (Setting each slot
    through its descriptor's ``__set__`` cost a call with an argument tuple per field: five
    times slower.) Generated from the fields, so it stays in step with them.
    """
    names = [f.name for f in fields(Record)]
    twin = type("_RecordInTheMaking", (), {"__slots__": Record.__slots__})
    namespace: dict[str, Any] = {"_new": object.__new__, "_Twin": twin, "Record": Record}
    # Fields after ``extra`` (added later) take their defaults: callers pass up to ``extra``.
    after = names[names.index("extra") + 1 :]
    namespace.update({f"_default_{f.name}": f.default for f in fields(Record) if f.name in after})
    params = [name if name not in after else f"{name}=_default_{name}" for name in names]
    body = "".join(f"    r.{name} = {name}\n" for name in names)
    source = (
        f"def new_record({', '.join(params)}):\n    r = _new(_Twin)\n{body}"
        "    r.__class__ = Record\n    return r\n"
    )
    # exec of the text built just above from the field names, never of anything from outside.
    exec(source, namespace)
    return namespace["new_record"]


#: Used once per attempt by the fetcher (see _compile_new_record).
new_record = _compile_new_record()
_set_verdict = Record.__dict__["verdict"].__set__
_set_watch = Record.__dict__["watch"].__set__


def set_judgement(record: Record, verdict: bool | None, watch: tuple[str, int, str] | None) -> None:
    """Give ``record`` its ``verdict`` and ``watch`` (afetch.watch), in place.

    Only for the writer thread, on records handed over to it, which nothing else holds any
    more, before it writes them: a copy of each record cost as much as the rest of --history's
    work per URL.
    """
    _set_verdict(record, verdict)
    _set_watch(record, watch)


def set_watch(record: Record, watch: tuple[str, int, str]) -> None:
    """:func:`set_judgement` of the ``watch`` alone (``--history``), the verdict as it is."""
    _set_watch(record, watch)


#: json.dumps(value, ensure_ascii=False, separators=(",", ":")), without a new encoder per call.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: How each schema key is written, by the type its field holds.
_SCHEMA_JSON_KINDS = {
    "url": "str",
    "final_url": "final_url",
    "status": "int?",
    "ok": "ok",
    "error": "error",
    "elapsed_ms": "float",
    "bytes": "int",
    "content_type": "str?, few",
    "http_version": "str?, few",
    "redirects": "int",
    "attempts": "int",
    "started_at": "str",
}
_JSON_OF_KIND = {
    "str": "_s({0})",
    "str?": "('null' if {0} is None else _s({0}))",
    # A run's few values (HTTP/1.1, text/html...): each encoded once (see _few).
    "str?, few": "('null' if {0} is None else _known.get({0}) or _few({0}))",
    # Mostly the URL itself (no redirect): its JSON is the url key's (written first, as v0).
    "final_url": "('null' if {0} is None else v0 if {0} is r.url else _s({0}))",
    # Exactly int (a bool is an int too, written true/false), exactly a finite float (json spells
    # inf and nan its own way): anything else goes to _other, which sends the record the general
    # way. The f-string writes the int itself (as str(), which is repr() for an exact int: no
    # call) and the float with !r (no call either).
    "int": "({0} if {0}.__class__ is int else _other())",
    "int?": "('null' if {0} is None else {0} if {0}.__class__ is int else _other())",
    "bool": "('true' if {0} else 'false')",
    # Record.ok, inlined (its property is a call per record): the verdict, else the default rule.
    "ok": "('true' if (r.error is None and r.status is not None and r.status < 400 "
    "if r.verdict is None else r.verdict) else 'false')",
    "bool?": "('null' if {0} is None else 'true' if {0} is True else 'false' if {0} is False "
    "else _other())",
    "float": "({0} if {0}.__class__ is float and _finite({0}) else _other())",
    "error": "('null' if {0} is None else "
    "'{{\"type\":' + _s({0}.type) + ',\"message\":' + _s({0}.message) + '}}')",
}


def _other_type() -> str:
    raise TypeError("a record field of another type than declared")


#: The JSON of strings a run repeats on every record (content types, HTTP versions), up to a
#: bound: a look-up costs a fraction of encoding the string again.
_known_json: dict[str, str] = {}
_KNOWN_JSON_MAX = 256


def _few(value: str) -> str:
    encoded = _encode(value)
    if len(_known_json) < _KNOWN_JSON_MAX:
        _known_json[value] = encoded
    return encoded


def _compile_json_writer(
    name: str, kinds: dict[str, str], *, first: str, last: str
) -> Callable[[Record], str]:
    """``record -> first + '"key":value,...' + last`` for the keys of ``kinds`` (key -> kind,
    in order), each written as json.dumps writes it (``ensure_ascii=False``, no spaces);
    ``first`` and ``last`` are f-string text (a literal brace doubled).

    A record is written for every URL, and json.dumps spends most of its time on generic
    dispatch: knowing each field's type, this is about three times faster. A field of another
    type raises TypeError; the caller then falls back.
    """
    # Each value into a local, then one f-string of them: the line is built in one go
    # (BUILD_STRING), not by 20-odd concatenations.
    assert "final_url" not in kinds.values() or next(iter(kinds)) == "url"  # it reads v0
    values, line = [], first
    for index, (key, kind) in enumerate(kinds.items()):
        values.append(f"    v{index} = {_JSON_OF_KIND[kind].format('r.' + key)}\n")
        conversion = "!r" if kind == "float" else ""
        line += ("" if index == 0 else ",") + json.dumps(key) + f":{{v{index}{conversion}}}"
    source = f"def {name}(r):\n{''.join(values)}    return f'{line}{last}'\n"
    namespace = {
        "_s": json.encoder.encode_basestring,  # the C encoder's, when present
        "_finite": math.isfinite,
        "_other": _other_type,
        "_known": _known_json,
        "_few": _few,
    }
    # exec of the text built just above from constants, never of anything from outside.
    exec(source, namespace)
    return namespace[name]  # type: ignore[no-any-return]


#: ``record -> '{"url":"...",...'``: the SCHEMA_KEYS, without the closing brace.
_schema_json = _compile_json_writer(
    "schema_json", {key: _SCHEMA_JSON_KINDS[key] for key in SCHEMA_KEYS}, first="{{", last=""
)


def _watch_json(watch: tuple[str, int, str]) -> str:
    """``',"change":"same","streak":3,"since":"..."}'``: the --history keys, closing the line
    (change is one of a few plain words, since a timestamp: nothing to escape but the rule)."""
    change, streak, since = watch
    return f',"change":{_encode(change)},"streak":{streak:d},"since":{_encode(since)}}}'


_encode = json.encoder.encode_basestring

#: The optional keys a generated tail can write, by kind (as _SCHEMA_JSON_KINDS).
_OPTIONAL_JSON_KINDS = {
    "not_modified": "bool?",
    "path": "str?",
    "sha256": "str?",
    "confirmed": "bool?",
}
_optional_tails: dict[tuple[str, ...], Callable[[Record], str] | None] = {}


def _optional_json(keys: tuple[str, ...]) -> Callable[[Record], str] | None:
    """``record -> ',"sha256":"...",...}'``: the run's optional ``keys`` and the closing
    brace, as ``_added`` and json.dumps write them, for a record without method or meta (a
    plain line's); None when a key is not one of these. Generated once per set of keys.

    --cache, --hash and --save-dir add a key or two to every record: written this way it costs
    a fraction of a dict and a json.dumps per record.
    """
    given = keys
    if given in _optional_tails:
        return _optional_tails[given]
    tail = None
    if all(key in _OPTIONAL_JSON_KINDS for key in keys):
        kinds = {key: _OPTIONAL_JSON_KINDS[key] for key in OPTIONAL_KEYS if key in keys}
        tail = _compile_json_writer("tail", kinds, first=",", last="}}")  # _added's order
    _optional_tails[given] = tail
    return tail
