"""The one settings loader: each table of `labwarden.toml` is a dataclass.

A table's dataclass says everything the loader checks: its keys (the fields), their types
(the annotations), sub-tables (fields whose type is itself a dataclass), defaults. Extra
rules that types cannot say go in a `validate(self, where)` method, called after loading.
Field metadata: `toml` (the key's path when it is not the field's name, e.g.
`"tuner.sampler"`), `positive` (numbers must be > 0), `internal` (not a key). Every
error has one shape, naming the file and the table:

    labwarden.toml [run]: unknown key 'time_budget' (did you mean 'time_budget_s'?)
    labwarden.toml [workspace]: 'editable' must be a list of strings, but got 'trainer/**'.

Top-level tables are the core ones (`CORE_TABLES`), tables declared with
`declare_table(name, cls)` before the config is loaded, and the `[plugins.NAME]` namespace:
a plugin (a guard rule, an agent) reads its own table with
`load_table(config, "plugins.NAME", ItsDataclass)` and gets the same checks. Anything
else at the top level is an unknown table.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from labwarden.errors import ConfigError

T = TypeVar("T")

CONFIG_NAME = "labwarden.toml"
CORE_TABLES = ("workspace", "run", "guards", "agents", "sandbox")
PLUGIN_NAMESPACE = "plugins"
_DECLARED: dict[str, type] = {}


def declare_table(name: str, cls: type) -> None:
    """Accept the top-level table `[name]`, parsed with `cls` by its owner."""
    _DECLARED[name] = cls


def known_tables() -> tuple[str, ...]:
    return (*CORE_TABLES, *_DECLARED, PLUGIN_NAMESPACE)


def where(table: str, file: str = CONFIG_NAME) -> str:
    return f"{file} [{table}]"


def check_tables(raw: dict[str, Any], file: str = CONFIG_NAME) -> None:
    """Every top-level entry is a known table; `[plugins]` holds only tables."""
    known = known_tables()
    for name, value in raw.items():
        if name not in known:
            raise ConfigError(f"{file}: unknown table [{name}]{_suggest(name, known)}; "
                              f"known: {', '.join(f'[{k}]' for k in known)}.")
        if not isinstance(value, dict):
            raise ConfigError(f"{where(name, file)}: must be a table, but got {value!r}.")
    for name, value in raw.get(PLUGIN_NAMESPACE, {}).items():
        if not isinstance(value, dict):
            raise ConfigError(f"{where(f'{PLUGIN_NAMESPACE}.{name}', file)}: must be a table "
                              f"(a plugin's settings), but got {value!r}.")


def load_table(source: Any, name: str, cls: type[T], *, file: str = CONFIG_NAME) -> T:
    """Parse the table `name` (dotted for sub-tables: `agents.tuner`, `plugins.myorg`) of
    `source` (a `WorkspaceConfig` or the parsed TOML) into `cls`; absent means defaults."""
    raw = getattr(source, "raw", source)
    value: Any = raw
    for part in name.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else value
    return parse_table(value, name, cls, file=file)


def parse_table(table: Any, name: str, cls: type[T], *, file: str = CONFIG_NAME) -> T:
    """Parse one table into `cls`. A field is read from the key of its name, or from the
    path in its metadata `toml` (`field(metadata={"toml": "tuner.sampler"})` reads
    `[<name>.tuner] sampler`), so a flat dataclass can keep sub-tables in the file."""
    at = where(name, file)
    if not isinstance(table, dict):
        raise ConfigError(f"{at}: must be a table, but got {table!r}.")
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    metadata = {f.name: f.metadata for f in fields(cls)}
    paths = {f.name: tuple(f.metadata.get("toml", f.name).split("."))
             for f in fields(cls) if f.init and not f.metadata.get("internal")}
    direct = [p[0] for p in paths.values() if len(p) == 1]
    subs: dict[str, list[str]] = {}
    for p in paths.values():
        if len(p) == 2:
            subs.setdefault(p[0], []).append(p[1])
    known = direct + list(subs)
    for key, value in table.items():
        if key in subs:
            if not isinstance(value, dict):
                raise ConfigError(f"{where(f'{name}.{key}', file)}: must be a table, "
                                  f"but got {value!r}.")
            for sub_key in value:
                if sub_key not in subs[key]:
                    raise ConfigError(f"{where(f'{name}.{key}', file)}: unknown key "
                                      f"{sub_key!r}{_suggest(sub_key, subs[key])}")
        elif key not in direct:
            raise ConfigError(f"{at}: unknown key {key!r}{_suggest(key, known)}")
    values: dict[str, Any] = {}
    for field_name, path in paths.items():
        holder, holder_name = table, name
        if len(path) == 2:
            holder, holder_name = table.get(path[0], {}), f"{name}.{path[0]}"
        if path[-1] not in holder:
            continue
        value, kind = holder[path[-1]], hints[field_name]
        if is_dataclass(kind):
            values[field_name] = parse_table(value, f"{holder_name}.{path[-1]}", kind,
                                             file=file)
        else:
            what = f"{where(holder_name, file)}: {path[-1]}"
            positive = bool(metadata[field_name].get("positive"))
            values[field_name] = convert(value, kind, what, positive=positive)
    out = cls(**values)
    validate = getattr(out, "validate", None)
    if callable(validate):
        validate(at)
    return out


def convert(value: Any, kind: Any, what: str, *, positive: bool = False) -> Any:
    """`value` as `kind` (the TOML types: str, int, float, bool, lists, tables), or a
    ConfigError `what must be <type>, but got <value>.`; `positive` (a field's metadata)
    also refuses numbers <= 0."""
    ok, out = _convert(value, kind)
    if ok and positive and isinstance(out, int | float) and not out > 0:
        ok = False
    if not ok:
        text = describe(kind)
        if positive:
            text = text.replace("a number", "a positive number").replace(
                "an integer", "a positive number")
        raise ConfigError(f"{what} must be {text}, but got {value!r}.")
    return out


def _convert(value: Any, kind: Any) -> tuple[bool, Any]:
    origin, args = get_origin(kind), get_args(kind)
    if kind is Any:
        return True, value
    if origin in (Union, types.UnionType):
        for option in args:
            if option is type(None):
                continue
            ok, out = _convert(value, option)
            if ok:
                return True, out
        return False, None
    if origin is Literal:
        return (value in args and type(value) is type(args[0])), value
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if kind is str:
        return isinstance(value, str), value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return False, None
        item = args[0] if args else Any
        out = []
        for v in value:
            ok, c = _convert(v, item)
            if not ok:
                return False, None
            out.append(c)
        return True, tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            return False, None
        vkind = args[1] if len(args) == 2 else Any
        out_d = {}
        for k, v in value.items():
            ok, c = _convert(v, vkind)
            if not ok:
                return False, None
            out_d[k] = c
        return True, out_d
    if kind is dict:
        return isinstance(value, dict), value
    raise TypeError(f"settings field type {kind!r} is not supported")


def describe(kind: Any) -> str:
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list):
        item = args[0] if args else Any
        return f"a list of {_plural(item)}"
    if origin is dict or kind is dict:
        vkind = args[1] if len(args) == 2 else Any
        return "a table" if vkind is Any else f"a table of {_plural(vkind)}"
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(kind, getattr(kind, "__name__", str(kind)))


def _plural(kind: Any) -> str:
    if get_origin(kind) is dict or kind is dict:
        return "tables"
    return {bool: "booleans", int: "integers", float: "numbers",
            str: "strings"}.get(kind, describe(kind))


def _suggest(key: str, known: list[str] | tuple[str, ...]) -> str:
    import difflib  # only on an error: the check path stays light

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close:
        # a key that is a prefix or an extension of a known one (time_budget/time_budget_s)
        close = [k for k in known if k.startswith(key) or key.startswith(k)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def default_of(cls: type, name: str) -> Any:
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(name)
