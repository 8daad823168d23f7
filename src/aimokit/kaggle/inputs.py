"""Every input a kernel's config names must come from a source the kernel attaches.

A shipped config names its inputs as `$AIMOKIT_INPUT/<mount>/...` (/kaggle/input
on Kaggle). Nothing else makes sure the model is there: a kernel whose model is
not attached would run for hours and answer every problem with the fallback.
So `build` refuses it, naming the missing source, and the notebook's first
cell checks the same paths again where it runs, failing within a minute with a
listing of what /kaggle/input does hold.

Mount points (see ../shared/docs/competitions.md): a dataset at
`/kaggle/input/<slug>`, the competition at `/kaggle/input/<competition>`, a
Kaggle Model at `/kaggle/input/<model>/<framework>/<variation>/<version>`.
"""

from __future__ import annotations

import re
from typing import Any

from .. import mounts as layouts
from ..config import PATH_FIELDS, KernelConfig, section_strings
from ..errors import AimokitError

_INPUT = re.compile(r"^\$\{?AIMOKIT_INPUT\}?/(.+)$")


class InputError(AimokitError, ValueError):
    """A config names an input no attached source provides."""


def model_mount(ref: str) -> str:
    """`owner/model/framework/variation/version` -> where Kaggle mounts it under /kaggle/input."""
    parts = ref.split("/")
    if len(parts) != 5 or not all(parts):
        raise InputError(f"model source {ref!r} must be 'owner/model/framework/variation/version' "
                         "(as the model's page on Kaggle shows it, e.g. 'google/gemma/pytorch/7b/1')")
    if not parts[4].isdigit():  # the client's int(): checked here, before any dataset is uploaded
        raise InputError(f"model source {ref!r}: its version {parts[4]!r} must be a number (the model page's "
                         "version, e.g. 'openai/gpt-oss-120b/transformers/default/2')")
    return "/".join(parts[1:])


def mounts(dataset_refs: list[str], competition: str, model_sources: list[str]) -> dict[str, str]:
    """{mount path under the input root: the source that provides it}."""
    out = {ref.split("/", 1)[1]: f"dataset {ref}" for ref in dataset_refs}
    if competition:
        out[competition] = f"competition {competition}"
    for ref in model_sources:
        out[model_mount(ref)] = f"model {ref}"
    return out


_KIND = {"dataset": "datasets", "competition": "competitions", "model": "models"}


def as_source(rel: str, available: dict[str, str]) -> str | None:
    """`<mount>/<path>` (a `$AIMOKIT_INPUT/...` path) as the `kaggle:` name of the source mounted there."""
    for mount, src in sorted(available.items(), key=lambda kv: -len(kv[0])):
        if rel == mount or rel.startswith(mount + "/"):
            kind, ref = src.split(" ", 1)
            inside = rel[len(mount):].lstrip("/")
            return f"{layouts.PREFIX}{_KIND[kind]}/{ref}" + (f"/{inside}" if inside else "")
    return None


def by_source(cfg: KernelConfig, available: dict[str, str]) -> KernelConfig:
    """The config with every `$AIMOKIT_INPUT/<mount>/...` path named by the source attached at that mount
    (`kaggle:datasets/<owner>/<slug>/...`), so the kernel finds it under whichever layout Kaggle mounts."""
    changes = {}
    for dotted in PATH_FIELDS:
        section, key = dotted.split(".")
        m = _INPUT.match(getattr(getattr(cfg, section), key))
        if m and (named := as_source(m.group(1).rstrip("/"), available)):
            changes[dotted] = named
    return cfg.override(changes) if changes else cfg


def input_paths(cfg: KernelConfig) -> dict[str, str]:
    """{setting: path under the input root} for every `$AIMOKIT_INPUT/...` path the config names."""
    found: dict[str, str] = {}
    for dotted in PATH_FIELDS:
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        m = _INPUT.match(value)
        if m:
            found[dotted] = m.group(1).rstrip("/")
        elif (named := layouts.parse(value)) is not None:  # kaggle:<kind>/<source>/...: the flat mount point
            kind, ref, rest = named
            found[dotted] = "/".join(layouts.flat_tail(kind, ref) + ([rest] if rest else []))
    for dotted, value in section_strings(cfg):  # e.g. a tokenizer or a vocabulary file passed to vLLM
        if _INPUT.match(value):
            found[dotted] = _INPUT.match(value).group(1).rstrip("/")
    return found


def check_inputs(cfg: KernelConfig, available: dict[str, str], where: str) -> list[str]:
    """The config's input paths (as `$AIMOKIT_INPUT/...`), or InputError naming each one no source provides."""
    problems = []
    for setting, rel in input_paths(cfg).items():
        if any(rel == m or rel.startswith(m + "/") for m in available):
            continue
        first = rel.split("/")[0]
        problems.append(
            f"{setting} = '$AIMOKIT_INPUT/{rel}' needs an input mounted at /kaggle/input/{first}, and no attached "
            f"source is. Attach it in the ship config's [[kernels]] entry: its dataset in dataset_sources "
            f"('<owner>/{first}'), or a Kaggle Model in model_sources ('<owner>/{first}/<framework>/<variation>/"
            f"<version>')")
    if problems:
        have = ", ".join(f"{m} ({src})" for m, src in sorted(available.items())) or "nothing"
        raise InputError(f"{where}: " + "; ".join(problems) + f". Attached now: {have}")
    return [f"$AIMOKIT_INPUT/{rel}" for rel in input_paths(cfg).values()]


def required_paths(cfg: KernelConfig) -> list[str]:
    """Every path the kernel needs where it runs, as written in the shipped config (with $VARIABLES)."""
    out = []
    for dotted in PATH_FIELDS:
        section, key = dotted.split(".")
        value: Any = getattr(getattr(cfg, section), key)
        if isinstance(value, str) and value.startswith(("$", layouts.PREFIX)) and dotted != "run.output_dir":
            out.append(value)
    # a path among a backend's own settings too (engine.vllm.compile_cache = "$AIMOKIT_COMPILE_CACHE/<kernel>")
    out += [value for _, value in section_strings(cfg) if value.startswith(("$", layouts.PREFIX))]
    return out
