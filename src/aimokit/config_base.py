"""The config machinery every job's config is made of: `setting` (a field with its help), `Job.load` (TOML, then
dotted overrides, checked whole), typed coercion that names the key it fails on, and TOML out again.

Its own module so that the kernel's settings (config.py) and every other job's config (train_config, eval,
ship...) are built the same way from one place, and so that the machinery imports nothing of the kit's.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import typing
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import AimokitError


class ConfigError(AimokitError, ValueError):
    """A configuration value is missing, unknown or out of range."""


def setting(default: Any = MISSING, *, help: str, default_factory: Any = MISSING) -> Any:
    """A config field with its help text: `--help`, `build.py settings` and docs/settings.md read it (TRL's way)."""
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


class Job:
    """The one way every job's config is made: `Job.load(path, overrides)`.

    Subclasses are frozen dataclasses whose sections check themselves in
    `__post_init__`, so no config exists unchecked, and a change is a copy
    (`dataclasses.replace`, `override`), never an edit.
    """

    what: ClassVar[str] = "config"

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Any:
        """From TOML (or the defaults), then `{"section.key": value}` overrides; checked once, whole."""
        data = cls._resolve_paths(read_toml(path, cls.what), Path(path).resolve().parent) if path else {}
        return from_dict(cls, merge_dotted(data, overrides or {}))

    @classmethod
    def _resolve_paths(cls, data: dict[str, Any], folder: Path) -> dict[str, Any]:
        """Make the relative paths a file names relative to the file (each job says which); default: none."""
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return from_dict(cls, data)

    def override(self, dotted: dict[str, Any]) -> Any:
        """A copy with `{"solver.samples": 4, ...}` applied; an unknown key is an error."""
        return override(self, dotted)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return to_toml(self)

    @classmethod
    def settings(cls) -> list[tuple[str, str, Any, str]]:
        """(dotted name, type, default, help) for every setting: the CLI's and the docs' one source."""
        return list(_settings(cls, ""))


def _settings(cls: type, prefix: str):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        name = prefix + f.name
        if dataclasses.is_dataclass(hint):
            yield from _settings(hint, name + ".")
            continue
        args = typing.get_args(hint)
        if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
            yield from _settings(args[0], name + "[].")  # an array of tables: [[name]]
            continue
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        yield name, _type_name(hint), default, f.metadata.get("help", "")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def file_relative(value: Any, folder: Path) -> Any:
    """A relative path named in a config file, made absolute against the file's folder; anything else as it is
    ($-paths the kernel expands, absolute paths, empty strings, and non-strings the type check will report)."""
    if (not isinstance(value, str) or not value or value.startswith(("$", "kaggle:"))
            or Path(value).is_absolute()):
        return value
    return str((folder / value).resolve())


def override(cfg: Any, dotted: dict[str, Any]) -> Any:
    """A copy of any config dataclass with `{"section.key": value}` applied; an unknown key is an error."""
    return from_dict(type(cfg), merge_dotted(dataclasses.asdict(cfg), dotted))


def merge_dotted(data: dict[str, Any], dotted: dict[str, Any]) -> dict[str, Any]:
    """`data` (parsed TOML) with `{"section.key": value}` set; tables are created, unknown keys caught later."""
    data = copy.deepcopy(data)
    for key, value in dotted.items():
        parts = key.split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"unknown setting {key!r}: {p} is not a table")
        node[parts[-1]] = value
    return data


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build any config dataclass from parsed TOML, checking keys and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where or 'top'}] must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(repr((where + '.' if where else '') + u) for u in unknown)}; "
            f"known in [{where or 'top'}]: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not fit {hint}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if origin is list and isinstance(value, list):
        if args and dataclasses.is_dataclass(args[0]):  # e.g. [[kernels]] tables
            return [from_dict(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [_coerce(v, args[0], where) for v in value] if args else value
    if origin is dict and isinstance(value, dict):
        return value
    if hint is Any:
        return value
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file, with errors that name the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist; pass an existing .toml path")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what} {p} is not valid TOML: {e}") from e


def to_toml(cfg: Any) -> str:
    """Write any config (or its dict) as TOML that tomllib reads back the same: scalars first, then tables."""
    data = cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg)
    return "\n".join(_toml_table(data, ""))


def _toml_table(values: dict[str, Any], name: str) -> list[str]:
    lines = [f"[{name}]"] if name else []
    tables = []
    for key, value in values.items():
        if value is None:  # TOML has no null: an unset optional setting is left out, and reads back unset
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.extend((key, v, True) for v in value)  # an array of tables: [[key]]
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    lines.append("")
    for entry in tables:
        key, table = entry[0], entry[1]
        full = f"{name}.{key}" if name else key
        if len(entry) == 3:
            lines.extend([f"[[{full}]]", *(f"{k} = {_toml_value(v)}" for k, v in table.items()), ""])
        else:
            lines.extend(_toml_table(table, full))
    return lines


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} as TOML")
