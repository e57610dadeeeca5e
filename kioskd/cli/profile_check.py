"""A technician's view of a vehicle profile: every problem of a file with its key and line, the effective profile
with every default filled in, and the schema document generated from the same models the daemon validates with.

It builds the backends the profile names (which does no I/O) so that their own options are checked too; it never
starts a device. A backend's options model is read from its class (``options_model``), never by building it."""

from __future__ import annotations

import json
import re
import tempfile
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kioskd.clock import ManualClock
from kioskd.errors import KioskError, ProfileError
from kioskd.hal import DEVICE_KINDS, DriverKind, Event, options_model_of
from kioskd.hal.loader import GROUP, build_backend
from kioskd.profile import Profile, parse_profile

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.\"' -]+?)\s*=")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_-]+)\s*=")


@dataclass(frozen=True)
class Problem:
    key: str  # dotted, as in the file: devices.power.port
    line: int | None
    what: str

    def render(self, path: Path) -> str:
        """``file:line: key: what``, as compilers print it (editors jump to the line)."""
        return f"{path}:{self.line if self.line is not None else '?'}: {self.key}: {self.what}"


def _strip_comment(line: str) -> str:
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:i]
    return line


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def key_lines(text: str) -> dict[str, int]:
    """Where each dotted key of a TOML text is written (1-based lines), including tables, array-of-tables
    elements (``scanning.destinations.1``) and the keys of inline tables and arrays of them."""
    lines: dict[str, int] = {}
    table = ""
    counts: dict[str, int] = {}
    value_key: str | None = None  # the key whose value (an array or inline table) goes on over the lines
    element = -1
    depth = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        segment = _strip_comment(raw)
        if value_key is None:
            header = _HEADER.match(segment)
            if header:
                name = _dotted(header.group(2))
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    lines.setdefault(name, number)
                    name = f"{name}.{counts[name]}"
                lines.setdefault(name, number)
                table = name
                continue
            assign = _ASSIGN.match(segment)
            if not assign:
                continue
            value_key = f"{table}.{_dotted(assign.group(1))}" if table else _dotted(assign.group(1))
            lines.setdefault(value_key, number)
            segment = segment[assign.end() :]
            element, depth = -1, 0
        for char in segment:
            if char in "[{":
                depth += 1
                if char == "{" and depth == 2:
                    element += 1
                    lines.setdefault(f"{value_key}.{element}", number)
            elif char in "]}":
                depth -= 1
        prefix = f"{value_key}.{element}" if element >= 0 else value_key
        for inner in _INLINE_KEY.finditer(segment):
            lines.setdefault(f"{prefix}.{inner.group(1)}", number)
        if depth <= 0:
            value_key = None
    return lines


def line_of(key: str, lines: dict[str, int]) -> int | None:
    """The line of ``key``, else of its nearest enclosing table (a missing key is reported where its table is)."""
    parts = key.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None


def _relative(where: str, source: str) -> str:
    return where.removeprefix(f"{source}: ").removeprefix(f"{source}:").strip()


def check(path: Path) -> tuple[Profile | None, list[Problem]]:
    """Every problem of the profile at ``path``: TOML syntax, the station's sections, each backend's options."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return None, [Problem("(file)", None, f"cannot read the profile: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [Problem("(file)", None, "not UTF-8 text")]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"line (\d+)", str(exc))
        return None, [Problem("(syntax)", int(at.group(1)) if at else None, f"not valid TOML: {exc}")]
    lines = key_lines(text)
    source = str(path)
    try:
        profile = parse_profile(data, source)
    except ProfileError as exc:
        problems = exc.problems or ((_relative(exc.where, source), exc.what),)
        return None, [Problem(key, line_of(key, lines), what) for key, what in problems]
    found: list[Problem] = []
    for kind, error in _build_each(profile):
        table = "host" if kind == "host" else f"devices.{kind}"
        pairs = (
            error.problems
            if isinstance(error, ProfileError) and error.problems
            else ((_relative(error.where, source) or table, error.what),)
        )
        found += [Problem(key, line_of(key, lines), what) for key, what in pairs]
    return profile, found


def _build_each(profile: Profile) -> Iterator[tuple[DriverKind, KioskError]]:
    kinds: tuple[DriverKind, ...] = (*DEVICE_KINDS, "host")
    shared: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kioskd-check-") as runtime:
        for kind in kinds:
            try:
                build_backend(profile, kind, ManualClock(), _ignore, Path(runtime), shared)
            except KioskError as exc:
                yield kind, exc


def _ignore(_: Event) -> None:
    pass


# ------------------------------------------------------------------------------------------- effective profile
def effective(profile: Profile) -> dict[str, Any]:
    """The profile as the daemon runs it: every default filled in, the backends' option defaults included."""
    data = profile.model_dump(mode="json", exclude={"source"})
    shared: dict[str, Any] = {}
    kinds: tuple[DriverKind, ...] = (*DEVICE_KINDS, "host")
    with tempfile.TemporaryDirectory(prefix="kioskd-show-") as runtime:
        for kind in kinds:
            backend, ctx = build_backend(profile, kind, ManualClock(), _ignore, Path(runtime), shared)
            model = options_model_of(type(backend))
            if model.model_fields:
                options = model.model_validate(dict(ctx.options)).model_dump(mode="json")
                section = data["host"] if kind == "host" else data["devices"][kind]
                section.update({k: v for k, v in options.items() if v is not None})
    return data


def to_toml(data: dict[str, Any]) -> str:
    """A TOML rendering of plain data (tables, arrays of tables, scalars, lists), enough for profiles."""
    out: list[str] = []
    _emit_table(data, [], out)
    return "\n".join(out).strip() + "\n"


def _emit_table(data: dict[str, Any], path: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v) and v is not None}
    if path and (scalars or not data):
        out.append(f"\n[{'.'.join(path)}]")
    out += [f"{k} = {_value(v)}" for k, v in scalars.items()]
    for k, v in data.items():
        if isinstance(v, dict):
            _emit_table(v, [*path, k], out)
        elif _is_table_array(v):
            for item in v:
                out.append(f"\n[[{'.'.join([*path, k])}]]")
                out += [f"{ik} = {_value(iv)}" for ik, iv in item.items() if iv is not None]


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(str(value), ensure_ascii=False)


# ------------------------------------------------------------------------------------------- schema document
def schema_markdown() -> str:
    """docs/profile.md: every section and key of a profile, and every installed backend's options, generated from
    the pydantic models (``make docs`` writes it; a test checks the committed file is up to date)."""
    out = [
        "# Vehicle profile reference",
        "",
        "Generated from the code by `kioskctl profile schema` (do not edit: `make docs`). A profile is a TOML file,",
        "installed at `/etc/kioskd/profile.toml`; `kioskctl profile check FILE` lists every problem with its line,",
        "`kioskctl profile show` prints the effective profile with the defaults.",
        "",
    ]
    for name, field in Profile.model_fields.items():
        if name == "source":
            continue
        model = _model_of(field.annotation)
        optional = model is None and type(None) in typing.get_args(field.annotation)
        if optional:  # an optional section ([fleet]): absent means the feature is off
            model = next((m for m in map(_model_of, typing.get_args(field.annotation)) if m is not None), None)
        if name == "devices":
            out += ["## `[devices.<kind>]`", "", f"One table per device kind: {', '.join(DEVICE_KINDS)}.", ""]
            out += ['Each names its backend with `driver = "…"`; the other keys are the backend\'s options:', ""]
            out += _backend_tables([k for k in DEVICE_KINDS])
            continue
        if name == "host":
            out += ["## `[host]`", "", 'Powering the PC off and inhibitor locks (`driver = "…"`).', ""]
            out += _backend_tables(["host"])
            continue
        if model is None:
            continue
        out += [f"## `[{name}]`" + (" (required)" if field.is_required() else " (optional)" if optional else ""), ""]
        out += _doc_lines(model)
        out += _fields_table(model)
        for inner_name, inner in model.model_fields.items():
            nested = next((a for a in typing.get_args(inner.annotation) if _model_of(a)), None)
            if nested is not None:
                out += [f"### `[[{name}.{inner_name}]]`", ""]
                out += _doc_lines(nested)
                out += _fields_table(nested)
    return "\n".join(out).rstrip() + "\n"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _doc_lines(model: type[BaseModel]) -> list[str]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    if not doc or doc.startswith("Base of") or doc == BaseModel.__doc__:
        return []
    return [" ".join(doc.split()), ""]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(arg) for arg in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    if annotation is type(None):
        return "none"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or isinstance(value, BaseModel):
        return "—"
    return f"`{_value(_plain(value))}`"


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length")):
            if getattr(item, attr, None) is not None:
                parts.append(f"{sign} {getattr(item, attr)}")
        if getattr(item, "pattern", None):
            parts.append(f"pattern `{item.pattern}`")
    return ", ".join(parts)


def _fields_table(model: type[BaseModel]) -> list[str]:
    rows = ["| key | type | default | constraints | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        rows.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {_constraints(field)} "
            f"| {field.description or ''} |"
        )
    return [*rows, ""]


def _backend_tables(kinds: list[DriverKind]) -> list[str]:
    out: list[str] = []
    wanted = {f"{kind}." for kind in kinds}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if not any(ep.name.startswith(prefix) for prefix in wanted):
            continue
        kind, driver = ep.name.split(".", 1)
        model = _options_model(ep.name)
        out += [f'### `driver = "{driver}"` ({kind}: `{ep.value}`)', ""]
        if model is None:
            out += ["(its options could not be read: the backend does not import here)", ""]
        elif not model.model_fields:
            out += ["No options.", ""]
        else:
            out += _doc_lines(model)
            out += _fields_table(model)
            for inner_name, inner in model.model_fields.items():  # a backend's lists of tables (uplinks)
                nested = next((a for a in typing.get_args(inner.annotation) if _model_of(a)), None)
                if nested is not None:
                    out += [f"#### `[[devices.{kind}.{inner_name}]]` ({driver})", ""]
                    out += _doc_lines(nested)
                    out += _fields_table(nested)
    return out


def _options_model(name: str) -> type[BaseModel] | None:
    """The options model a backend declares on its class (``options_model``), or None when it does not import."""
    try:
        cls = next(iter(entry_points(group=GROUP, name=name))).load()
    except ImportError:
        return None
    return options_model_of(cls)
