"""One typed configuration object per job, loadable from TOML.

The CLI, the kernel and the tests all build a `SolveConfig` the same way
(`load_config` / `SolveConfig.from_dict`), so a setting exists in exactly one
place. Unknown keys are an error rather than silently ignored: a typo in a
submission config would otherwise cost a whole 5-hour run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AimokitError


class ConfigError(AimokitError, ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclass
class CompetitionConfig:
    """The rules of one competition: answer range, modulo, limit, interface."""

    name: str = "aimo2"
    answer_min: int = 0
    answer_max: int = 999
    # AIMO-1/2 take answers mod 1000; 0 means no modulo (AIMO-3).
    modulo: int = 1000
    time_limit_s: float = 5 * 3600
    # Problems the hidden set holds; the budget divides time by it when the
    # server hands problems out one at a time and the total is not visible.
    expected_problems: int = 50
    # "kaggle_evaluation" (AIMO-2/3) or "aimo" (AIMO-1).
    interface: str = "kaggle_evaluation"
    server_module: str = "kaggle_evaluation.aimo_2_inference_server"
    server_class: str = "AIMO2InferenceServer"
    # Where the competition's own files (test.csv, kaggle_evaluation/) live on Kaggle.
    data_dir: str = "/kaggle/input/ai-mathematical-olympiad-progress-prize-2"
    # The answer given when nothing better is known (never left blank).
    fallback_answer: int = 0

    def validate(self) -> None:
        if self.answer_min > self.answer_max:
            raise ConfigError(
                f"competition.answer_min ({self.answer_min}) > answer_max ({self.answer_max})"
            )
        if self.modulo < 0:
            raise ConfigError("competition.modulo must be positive, or 0 for no modulo")
        if self.interface not in ("kaggle_evaluation", "aimo"):
            raise ConfigError(
                f"competition.interface={self.interface!r}: use 'kaggle_evaluation' or 'aimo'"
            )
        if not self.answer_min <= self.fallback_answer <= self.answer_max:
            raise ConfigError("competition.fallback_answer must lie in the answer range")


@dataclass
class EngineConfig:
    """Which model runs, on which backend, with which adapter."""

    backend: str = "vllm"  # "vllm" or "transformers"
    model: str = ""  # a local directory; empty means the embedded default
    lora: str = ""  # a local PEFT adapter directory, or empty for none
    max_lora_rank: int = 64
    dtype: str = "bfloat16"
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.90
    tensor_parallel_size: int = 1
    max_num_seqs: int = 256
    enable_prefix_caching: bool = True
    kv_cache_dtype: str = "auto"
    enforce_eager: bool = False
    seed: int = 0
    # Extra keyword arguments passed verbatim to vllm.LLM.
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.backend not in ("vllm", "transformers"):
            raise ConfigError(f"engine.backend={self.backend!r}: use 'vllm' or 'transformers'")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError("engine.gpu_memory_utilization must be in (0, 1]")
        if self.tensor_parallel_size < 1:
            raise ConfigError("engine.tensor_parallel_size must be >= 1")


@dataclass
class SandboxConfig:
    """Limits for model-written code: it is untrusted."""

    timeout_s: float = 6.0
    memory_mb: int = 2048
    max_output_chars: int = 1200
    # Bytes the process may write to its stdout/stderr file before writes fail.
    max_output_bytes: int = 1 << 20
    max_file_bytes: int = 16 << 20
    workers: int = 8
    # Re-run a sample's earlier clean blocks (silenced) before the new one, so
    # names defined in round 1 still exist in round 2, like a notebook.
    cumulative: bool = True
    python: str = ""  # interpreter for the child; empty: the running one
    # Files or folders model code may read besides its scratch directory and Python's own
    # libraries (everything else, credentials above all, is refused).
    read_paths: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb < 64 or self.max_output_chars < 16:
            raise ConfigError(
                "sandbox: timeout_s must be > 0, memory_mb >= 64, max_output_chars >= 16"
            )


@dataclass
class SolverConfig:
    """How many samples, how many tool rounds, how they are voted on."""

    prompt: str = "tir"  # a template name from aimokit.prompts
    system_prompt: str = ""
    samples: int = 16
    min_samples: int = 2
    max_rounds: int = 4
    max_tokens_per_round: int = 2048
    max_tokens_total: int = 6144
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    stop: list[str] = field(default_factory=lambda: ["```output", "\n```\n"])
    # Vote weights: an answer counts base weight x modifiers.
    weight_boxed: float = 1.0
    weight_unboxed: float = 0.5  # answer taken from the last printed integer
    weight_code_clean: float = 1.0
    weight_code_error: float = 0.6
    weight_no_code: float = 0.8
    # Early stop: decided when the leader can no longer be overtaken, or when
    # [k, n] holds: k votes agree and at most n answers are in.
    early_stop: list[list[int]] = field(default_factory=lambda: [[4, 4], [5, 7], [6, 9]])
    early_stop_agree: int = 0  # k agreeing answers stop at once (0: off)
    # Tool results re-enter generation only when no sample is generating, in a fixed order, so
    # that two runs with the same seeds batch the same way and write the same text (measured on
    # an H100: 57% identical responses without it). Costs throughput: samples wait for the round.
    sync_tool_rounds: bool = False

    def validate(self) -> None:
        if self.samples < 1 or self.min_samples < 1 or self.min_samples > self.samples:
            raise ConfigError("solver: need 1 <= min_samples <= samples")
        if self.max_rounds < 1:
            raise ConfigError("solver.max_rounds must be >= 1")
        if self.max_tokens_per_round < 1 or self.max_tokens_total < self.max_tokens_per_round:
            raise ConfigError("solver: need 1 <= max_tokens_per_round <= max_tokens_total")
        for rule in self.early_stop:
            if len(rule) != 2 or rule[0] < 1 or rule[1] < rule[0]:
                raise ConfigError(f"solver.early_stop rule {rule}: use [agree, out_of] with agree <= out_of")


@dataclass
class BudgetConfig:
    """How the competition limit is shared between problems."""

    # Time kept back at the end for writing, shutdown and clock skew.
    safety_margin_s: float = 600.0
    # Engine start-up time: a crashed engine is restarted only while this
    # much plus one problem's minimum remains (7B on an H100: ~230 s).
    startup_estimate_s: float = 300.0
    # Time kept in reserve for each problem still to come (AIMO-3 kernels: 300 s).
    reserve_per_problem_s: float = 60.0
    min_problem_s: float = 60.0
    max_problem_s: float = 900.0
    # Prior for tokens one sample uses, before any are measured.
    prior_tokens_per_sample: int = 2048

    def validate(self) -> None:
        if self.min_problem_s <= 0 or self.max_problem_s < self.min_problem_s:
            raise ConfigError("budget: need 0 < min_problem_s <= max_problem_s")


@dataclass
class RunConfig:
    """Where the kernel reads problems and writes its outputs."""

    problems: str = ""  # local gateway input; empty on Kaggle (the server gives them)
    output_dir: str = "."
    shuffle_seed: int = 0
    log_every_s: float = 30.0


@dataclass
class SolveConfig:
    """Everything a submission kernel (and its dry-run) needs."""

    competition: CompetitionConfig = field(default_factory=CompetitionConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "SolveConfig":
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "validate"):
                section.validate()
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SolveConfig":
        return from_dict(cls, data).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, dotted: dict[str, Any]) -> "SolveConfig":
        """Return a copy with `{"solver.samples": 4, ...}` applied."""
        return override(self, dotted).validate()


def override(cfg: Any, dotted: dict[str, Any]) -> Any:
    """A copy of any config dataclass with `{"section.key": value}` applied; an unknown key is an error."""
    data = dataclasses.asdict(cfg)
    for key, value in dotted.items():
        parts = key.split(".")
        node = data
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise ConfigError(f"unknown setting {key!r}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"unknown setting {key!r}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


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


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SolveConfig:
    """Load a SolveConfig from TOML (or defaults), then apply dotted overrides."""
    data = read_toml(path, "config file") if path else {}
    cfg = SolveConfig.from_dict(data)
    return cfg.override(overrides) if overrides else cfg


def load_job(cls: type, path: str | Path | None, overrides: dict[str, Any] | None = None, what: str = "config") -> Any:
    """Any job's config dataclass from TOML plus `key=value` / `section.key=value` overrides."""
    cfg = from_dict(cls, read_toml(path, what) if path else {})
    return override(cfg, overrides) if overrides else cfg


PATH_FIELDS = ("competition.data_dir", "engine.model", "engine.lora", "run.problems", "run.output_dir")
INPUT_ROOT = "/kaggle/input"  # where Kaggle mounts a kernel's inputs; $AIMOKIT_INPUT overrides it


def expand_paths(cfg: SolveConfig, env: dict[str, str] | None = None) -> SolveConfig:
    """Resolve `$AIMOKIT_INPUT/...`-style paths where the kernel runs, not where it was built.

    A shipped config names inputs relative to the mount point ($AIMOKIT_INPUT,
    default /kaggle/input) and the adapters dataset ($AIMOKIT_ADAPTERS, set by
    the notebook), so the same file works on Kaggle and in a local rehearsal.
    """
    env = dict(os.environ if env is None else env)
    env.setdefault("AIMOKIT_INPUT", INPUT_ROOT)
    for dotted in PATH_FIELDS:
        section, key = dotted.split(".")
        obj = getattr(cfg, section)
        value = getattr(obj, key)
        if "$" not in value:
            continue
        expanded = _expand(value, env)
        if "$" in expanded:
            missing = re.findall(r"\$\{?(\w+)", expanded)
            hint = (" attach the adapters dataset to the kernel" if "AIMOKIT_ADAPTERS" in missing
                    else " set it in the environment")
            raise ConfigError(f"{dotted} = {value!r}: {', '.join(missing)} is not set;{hint}")
        setattr(obj, key, expanded)
    return cfg


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def to_toml(cfg: SolveConfig) -> str:
    """Write a SolveConfig as TOML (tomllib reads it back to the same object)."""
    lines: list[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        tables = []
        for key, value in values.items():
            if isinstance(value, dict):
                tables.append((key, value))
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        for key, table in tables:
            lines.append(f"[{section}.{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    return "\n".join(lines)


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
