"""The config machinery every job's config is made of: `setting` (a field with its help), `Job.load` (TOML, then
dotted overrides, checked whole), typed coercion that names the key it fails on, and TOML out again.

Its own module so that the kernel's settings (config.py) and every other job's config (train_config, eval,
ship...) are built the same way from one place, and so that the machinery imports nothing of the kit's.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import tomllib
import typing
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from .errors import AimokitError

log = logging.getLogger("aimokit.config")


class ConfigError(AimokitError, ValueError):
    """A configuration value is missing, unknown or out of range."""


def setting(default: Any = MISSING, *, help: str, default_factory: Any = MISSING) -> Any:
    """A config field with its help text: `--help`, `build.py settings` and docs/settings.md read it (TRL's way)."""
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def sections(lookup: Callable[[], dict[str, type]], *, selector: str, help: str) -> Any:
    """A field holding one table per registered extension, written inline under its parent table.

    Why: an extension owns its settings. `[engine.vllm]` is read by the class the vllm backend registers
    (`lookup()` gives name -> settings dataclass, from the registry), so adding a backend adds its table
    without a line here or in the parent. `selector` names the parent's field that says which entry is in
    use: a key written at the parent's level that now belongs to that entry's table (a setting from before
    the split) is moved there, with a message naming its new place.
    """
    return field(default_factory=dict, metadata={"help": help, "sections": lookup, "selector": selector})


def _sections_field(cls: type) -> dataclasses.Field | None:
    return next((f for f in dataclasses.fields(cls) if "sections" in f.metadata), None)


def fill_sections(cfg: Any) -> None:
    """In a config's `__post_init__`: every registered entry's table, given (a dict is checked like TOML) or
    its defaults; an entry no extension registered is an error naming the registered ones."""
    f = _sections_field(type(cfg))
    given, classes = getattr(cfg, f.name), f.metadata["sections"]()
    unknown = sorted(set(given) - set(classes))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(map(repr, unknown))}: registered are "
                          f"{', '.join(sorted(classes))}")
    filled = {}
    for name, kind in classes.items():
        value = given.get(name, {})
        filled[name] = value if isinstance(value, kind) else from_dict(kind, value, name)
    object.__setattr__(cfg, f.name, filled)  # frozen: set once, here, before anyone reads it


def as_dict(cfg: Any) -> dict[str, Any]:
    """`dataclasses.asdict`, with each sections field written inline (`{"vllm": {...}}` in its parent), as
    the TOML has it: what `to_toml`, `override` and `to_dict` give, and what `from_dict` reads back."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if "sections" in f.metadata:
            out.update({name: as_dict(v) for name, v in value.items()})
        elif dataclasses.is_dataclass(value):
            out[f.name] = as_dict(value)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            out[f.name] = [as_dict(v) for v in value]
        else:
            out[f.name] = copy.deepcopy(value)
    return out


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
        return from_dict(cls, merge_dotted(data, moved_keys(cls, overrides or {})))

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
        return as_dict(self)

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
        if "sections" in f.metadata:
            for entry, kind in sorted(f.metadata["sections"]().items()):
                yield from _settings(kind, prefix + entry + ".")
            continue
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
    return from_dict(type(cfg), merge_dotted(as_dict(cfg), moved_keys(type(cfg), dotted)))


def moved_keys(cls: type, dotted: dict[str, Any]) -> dict[str, Any]:
    """Dotted overrides with a key from before a sections split written at its new place: an override of an
    old name replaces the value where it now lives, as the same key in a file is moved (`_moved_to_section`)."""
    return {_moved_key(cls, key): value for key, value in dotted.items()}


def _moved_key(cls: type, key: str) -> str:
    parts, done, node = key.split("."), [], cls
    while parts:
        part = parts.pop(0)
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return ".".join([*done, part, *parts])
        fields = {f.name: f for f in dataclasses.fields(node)}
        sec = _sections_field(node)
        if part in fields and (sec is None or part != sec.name):
            done.append(part)
            node = typing.get_type_hints(node)[part]
            continue
        classes = sec.metadata["sections"]() if sec is not None else {}
        if part in classes:
            done.append(part)
            node = classes[part]
            continue
        owner = _owner(classes, fields[sec.metadata["selector"]].default, part) if sec is not None else None
        if owner is None:  # unknown: left for from_dict to report
            return ".".join([*done, part, *parts])
        log.warning("config: %s is now %s (moved)", key, ".".join([*done, owner, part, *parts]))
        done += [owner, part]
        node = typing.get_type_hints(classes[owner])[part]
    return ".".join(done)


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
    tables: dict[str, Any] = {}
    if (sec := _sections_field(cls)) is not None:
        classes = sec.metadata["sections"]()
        selector = next(f for f in dataclasses.fields(cls) if f.name == sec.metadata["selector"])
        data = _moved_to_section(dict(data), classes, data.get(selector.name, selector.default), names, where)
        tables = {k: data.pop(k) for k in list(data) if k in classes}
        names = names - {sec.name}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(repr((where + '.' if where else '') + u) for u in unknown)}; "
            f"known in [{where or 'top'}]: {', '.join(sorted(names | set(tables)))}"
        )
    kwargs: dict[str, Any] = {}
    if sec is not None:
        kwargs[sec.name] = {k: from_dict(classes[k], v, f"{where}.{k}" if where else k) for k, v in tables.items()}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _owner(classes: dict[str, type], selected: Any, key: str) -> str | None:
    """The entry whose table has a field `key` (the selected entry's first), or None: where an old key moved."""
    return next((n for n in sorted(classes, key=lambda n: (n != selected, n))
                 if key in {f.name for f in dataclasses.fields(classes[n])}), None)


def _moved_to_section(data: dict[str, Any], classes: dict[str, type], selected: Any, names: set[str],
                      where: str) -> dict[str, Any]:
    """A key at the parent's level that is not the parent's but a field of an entry's table (the selected
    entry's first): moved into that table, with a message that names its new place. Old files keep loading."""
    for key in [k for k in data if k not in names and k not in classes]:
        owner = _owner(classes, selected, key)
        if owner is None:
            continue
        table = data.setdefault(owner, {})
        if not isinstance(table, dict) or key in table:
            raise ConfigError(f"{where}.{key} is now {where}.{owner}.{key}, and both are set: keep the second")
        table[key] = data.pop(key)
        log.warning("config: %s.%s is now %s.%s.%s (moved; write it under [%s.%s])", where, key, where, owner,
                    key, where, owner)
    return data


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
    data = cfg if isinstance(cfg, dict) else as_dict(cfg)
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
