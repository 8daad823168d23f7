"""One typed configuration object per job, all loaded one way: `Job.load(path, overrides)`.

The CLI, the kernel and the tests build every config the same way, so a
setting exists in exactly one place, with its help text beside it (`setting`,
as TRL's configs carry theirs). Configs are frozen and check themselves in
`__post_init__`: none exists unchecked, and a change is a copy. Unknown keys
are an error rather than silently ignored: a typo in a submission config
would otherwise cost a whole 5-hour run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .config_base import (  # noqa: F401  (the machinery, re-exported: `from .config import setting` reads on)
    ConfigError, Job, as_dict, file_relative, fill_sections, from_dict, merge_dotted, override, read_toml, sections,
    setting, to_toml,
)
from .competition import CompetitionConfig  # noqa: F401  (the [competition] table, re-exported)

ANSWER_REGIONS = ("answer", "anywhere")  # solver.answer_region: the protocol's answer segments, or all it wrote


def _backend_settings() -> dict[str, type]:
    """Each registered backend's own settings class: its `[engine.<name>]` table."""
    from . import registry

    return {name: registry.BACKENDS.get(name).Settings for name in registry.BACKENDS.names()}


@dataclass(frozen=True)
class EngineConfig:
    """Which model runs, on which backend, with which adapter: the fields every backend reads, and one table
    per backend (`[engine.vllm]`, `[engine.transformers]`) with the settings only it understands, owned and
    checked by the backend's module."""

    backend: str = setting("vllm", help="The engine backend: a name registered in aimokit.registry.BACKENDS "
                                        "('vllm', 'transformers'); its own settings are in [engine.<backend>].")
    fallback: str = setting("", help="The backend to fall back to when the configured one cannot be imported: "
                                     "empty for none (an error that names the fix: five hours of transformers on "
                                     "a GPU answer far fewer problems than vLLM), or 'transformers'. A fallback "
                                     "is logged and recorded in kernel_summary.json.")
    model: str = setting("", help="The model directory; empty: the embedded default. Relative in a config file: to that file.")
    lora: str = setting("", help="A PEFT LoRA adapter directory; empty: none. Relative in a config file: to that file. A ship config ships the adapters its kernels name here.")
    dtype: str = setting("bfloat16", help="Weights and activations: bfloat16 on GPUs; float32 on CPUs without native bf16 (3.5x faster there).")
    max_model_len: int = setting(4096, help="Prompt plus generated tokens, at most, for one sample.")
    tensor_parallel_size: int = setting(1, help="GPUs one engine holds (its model is split across them).")
    max_num_seqs: int = setting(256, help="Sequences the engine runs in one batch, at most (evaluate's default "
                                          "concurrency).")
    seed: int = setting(0, help="The engine-wide random seed.")
    start_timeout_s: float = setting(1200.0, help="An engine start that has not returned by then (or by the end of "
                                                  "the time budget, if sooner) is abandoned and its processes killed: "
                                                  "vLLM's start can hang when a worker dies (seen at TP 2).")
    backends: dict[str, Any] = sections(_backend_settings, selector="backend",
                                        help="[engine.<backend>]: each registered backend's own settings.")

    def __post_init__(self) -> None:
        if self.start_timeout_s <= 0:
            raise ConfigError(f"engine.start_timeout_s = {self.start_timeout_s}: it must be > 0 (seconds)")
        from . import registry

        try:
            registry.BACKENDS.get(self.backend, "engine.backend")
            if self.fallback:
                registry.BACKENDS.get(self.fallback, "engine.fallback")
        except registry.RegistryError as e:
            raise ConfigError(str(e)) from None
        if self.fallback == self.backend:
            raise ConfigError(f"engine.fallback = {self.fallback!r} is the backend itself: use '' (none) or another")
        if self.tensor_parallel_size < 1:
            raise ConfigError("engine.tensor_parallel_size must be >= 1")
        if self.max_num_seqs < 1:
            raise ConfigError("engine.max_num_seqs must be >= 1")
        fill_sections(self)

    def section(self, backend: str = "") -> Any:
        """The settings of `backend` (default: the configured one): `cfg.engine.section().kv_cache_dtype`."""
        return self.backends[backend or self.backend]


@dataclass(frozen=True)
class SandboxConfig:
    """Limits for model-written code: it is untrusted."""

    timeout_s: float = setting(6.0, help="Wall-clock seconds one code block may run.")
    memory_mb: int = setting(2048, help="Address-space limit of the code's process, in MiB.")
    max_output_chars: int = setting(1200, help="Characters of output shown back to the model (head and tail kept).")
    max_output_bytes: int = setting(1 << 20, help="Bytes the process may write to its stdout/stderr file before writes fail.")
    max_file_bytes: int = setting(16 << 20, help="Largest file the code may write (in its scratch directory only).")
    workers: int = setting(8, help="Code blocks run at once; a block waits for a free worker. Raise it with "
                                   "evaluate's concurrency where cores and memory allow: at 256 samples in flight "
                                   "with 64 workers, tool turns (a fresh process each) took 0.64 s at the median "
                                   "on an H200 host against 0.13 s at 64 in flight (docs/benchmarks.md).")
    sessions: bool = setting(False, help="Persistent Python sessions: each sample keeps one interpreter for its "
                                         "life (names persist, nothing is re-run), reset between problems. Off: a "
                                         "fresh process per block (with `cumulative`).")
    session_pool: int = setting(0, help="Spare sessions started ahead; 0: twice the samples in flight (each holds "
                                         "sympy and numpy, ~100 MB: at 256 in flight, as evaluate runs, cap it).")
    cumulative: bool = setting(True, help="Re-run a sample's earlier clean blocks (silenced) before the new one, so names defined in round 1 still exist in round 2, like a notebook.")
    python: str = setting("", help="interpreter for the child; empty: the running one")
    read_paths: list[str] = setting(default_factory=list, help="Files or folders model code may read besides its scratch directory and Python's own libraries (everything else, credentials above all, is refused).")
    kernel_layers: bool = setting(True, help="Apply the kernel-enforced layers (seccomp: no processes, sockets, "
                                             "ptrace, mount...; Landlock: reads only from the allow list, writes "
                                             "only to scratch) in every sandboxed process. Off only to measure "
                                             "their cost: native code walks around the Python-level guard.")
    missing_layer: str = setting("refuse", help="When the kernel lacks seccomp or Landlock: refuse (model code is "
                                                "not run; the model is told) or run (with the layers that exist; "
                                                "the log and kernel_summary.json say which). Kaggle's kernel may "
                                                "lack Landlock: the shipped Kaggle recipes say run, since the "
                                                "notebook holds no credentials and has no network.")

    def __post_init__(self) -> None:
        if self.missing_layer not in ("refuse", "run"):
            raise ConfigError(f"sandbox.missing_layer = {self.missing_layer!r}: use refuse or run")
        if self.session_pool < 0:
            raise ConfigError("sandbox.session_pool must be >= 0 (0: twice the samples in flight)")
        if self.timeout_s <= 0 or self.memory_mb < 64 or self.max_output_chars < 16:
            raise ConfigError(
                "sandbox: timeout_s must be > 0, memory_mb >= 64, max_output_chars >= 16"
            )


@dataclass(frozen=True)
class SamplingConfig:
    """How many samples, how many tool rounds, how they are voted on."""

    protocol: str = setting("fenced", help="How tool calls are written and read: fenced (```python / ```output: "
                                           "DeepSeekMath, Numina), harmony (gpt-oss), hermes (<tool_call>: Qwen3), "
                                           "cot (no tools).")
    prompt: str = setting("", help="A template name from aimokit.prompts; empty: the protocol's own (fenced: tir, "
                                   "harmony and hermes: tool, cot: cot). One that asks for another protocol's format "
                                   "(tir's ```python fences under harmony) is an error.")
    answer_region: str = setting("answer", help="Where answers are read (votes, stop_at_answer, rewards, SFT/DPO "
                                                "checks): answer, the protocol's own region (harmony's final "
                                                "channel, after </think>, prose outside code fences), or anywhere "
                                                "the model wrote (any harmony channel, reasoning included: AIMO-3's "
                                                "winners stopped gpt-oss at its first \\boxed{} in any channel).")
    harmony_renderer: str = setting("auto", help="harmony: openai_harmony (the reference renderer; an error if it "
                                                 "cannot load), text (the same tokens written as text), or auto "
                                                 "(openai_harmony where it loads, else text; the log says which).")
    max_repeat_calls: int = setting(3, help="A tool call identical to the calls just before it, this many in a row, "
                                            "is not run: the model is told its tool budget is spent and gets one "
                                            "more turn to answer (a loop of identical calls ends so).")
    reasoning_effort: str = setting("high", help="harmony (gpt-oss): the system message's reasoning effort: low, medium or high.")
    system_prompt: str = setting("", help="A system message before the problem; empty: none.")
    samples: int = setting(16, help="Samples per problem when time allows (the budget may give fewer).")
    min_samples: int = setting(2, help="Samples per problem however short the time.")
    max_rounds: int = setting(4, help="Code blocks one sample may run. A call past them is not run: the model is "
                                      "told its tool budget is spent and gets one more turn to answer.")
    max_tokens_per_round: int = setting(2048, help="Tokens one sample generates between two code runs, at most.")
    max_tokens_total: int = setting(6144, help="Tokens one sample generates in all, at most.")
    temperature: float = setting(0.8, help="Sampling temperature.")
    top_p: float = setting(0.95, help="Nucleus sampling: the probability mass kept.")
    min_p: float = setting(0.0, help="Tokens less likely than min_p x the top token's probability are never drawn (0: off; AIMO-3's winners: 0.02).")
    seed: int = setting(0, help="Per-sample seeds derive from it, the problem id and the sample index.")
    stop: list[str] = setting(default_factory=lambda: ["```output", "\n```\n"], help="Stop strings that end a round so its code can run.")
    weight_boxed: float = setting(1.0, help="Vote weights: an answer counts base weight x modifiers.")
    weight_unboxed: float = setting(0.5, help="answer taken from the last printed integer")
    weight_code_clean: float = setting(1.0, help="Vote weight modifier: every code block ran without error.")
    weight_code_error: float = setting(0.6, help="Vote weight modifier: some code block failed.")
    weight_no_code: float = setting(0.8, help="Vote weight modifier: the sample ran no code.")
    vote: str = setting("weighted", help="How answers are weighed: count, weighted (the weight_* settings), entropy "
                                         "(1 / the sample's mean token entropy) or combined (vote_share x share + "
                                         "vote_confidence x mean confidence + vote_consensus if it holds half).")
    top_logprobs: int = setting(0, help="Top-k logprobs asked of the engine per token, for the entropy statistics; "
                                        "0: none (the entropy and combined votes need at least 1; AIMO-3's winners: 5).")
    entropy_floor: float = setting(0.05, help="The entropy vote's weight is 1 / max(entropy_floor, mean entropy).")
    entropy_tail: int = setting(256, help="The last N tokens' mean entropy is kept too (evaluate and replay record it).")
    vote_share: float = setting(1.0, help="combined vote: the coefficient of an answer's share of the votes.")
    vote_confidence: float = setting(1.0, help="combined vote: the coefficient of its votes' mean confidence, 1 / (1 + entropy).")
    vote_consensus: float = setting(0.5, help="combined vote: the bonus of an answer holding at least half the votes.")
    genselect: bool = setting(False, help="GenSelect (NemoSkills' AIMO-2 win): when a problem's samples are all in and "
                                          "the vote is not decided, the model reads the top candidates and picks one, "
                                          "inside the problem's deadline. A pick outside the candidates keeps the vote.")
    genselect_share: float = setting(0.75, help="GenSelect runs only when the leading answer holds less than this "
                                                "share of the votes.")
    genselect_candidates: int = setting(4, help="GenSelect: the top answers (by the vote's score) shown to the model.")
    genselect_chars: int = setting(3000, help="GenSelect: each candidate's reasoning is cut to its last this many "
                                              "characters of model-written text.")
    genselect_tokens: int = setting(2048, help="GenSelect: the most tokens the selection reply may take.")
    genselect_min_s: float = setting(10.0, help="GenSelect is skipped (the vote stands, the log says so) when less "
                                                "than this many seconds of the problem's time are left.")
    selector: str = setting("", help="learned vote: the selector file `build.py select fit` writes (JSON: features, "
                                     "coefficients). Relative in a config file: to that file; a ship config ships it.")
    early_stop: list[list[int]] = setting(default_factory=lambda: [[4, 4], [5, 7], [6, 9]], help="Early stop: decided when the leader can no longer be overtaken, or when [k, n] holds: k votes agree and at most n answers are in.")
    early_stop_agree: int = setting(0, help="k agreeing answers stop at once (0: off)")
    stop_at_answer: bool = setting(False, help="End a sample as soon as its answer is complete (a closed \\boxed{} where the protocol reads the answer: harmony's final channel, after </think>, outside code fences) instead of waiting for EOS. AIMO-3's winners: on.")
    sync_tool_rounds: bool = setting(False, help="Tool results re-enter generation only when no sample is generating, in a fixed order, so that two runs with the same seeds batch the same way and write the same text (measured on an H100: 57% identical responses without it). Costs throughput: samples wait for the round.")

    def __post_init__(self) -> None:
        from . import registry
        from .protocols.harmony_render import RENDERERS

        try:
            protocol = registry.PROTOCOLS.get(self.protocol, "solver.protocol")
            policy = registry.POLICIES.get(self.vote, "solver.vote")
        except registry.RegistryError as e:
            raise ConfigError(str(e)) from None
        why = protocol.check_prompt(self.prompt)
        if why:
            raise ConfigError(why)
        if self.answer_region not in ANSWER_REGIONS:
            raise ConfigError(f"solver.answer_region = {self.answer_region!r}: use one of {', '.join(ANSWER_REGIONS)}")
        if self.harmony_renderer not in RENDERERS:
            raise ConfigError(f"solver.harmony_renderer = {self.harmony_renderer!r}: use one of {', '.join(RENDERERS)}")
        if self.max_repeat_calls < 2:
            raise ConfigError("solver.max_repeat_calls must be >= 2 (a call and its first repeat may both run)")
        if self.reasoning_effort not in ("low", "medium", "high"):
            raise ConfigError(f"solver.reasoning_effort = {self.reasoning_effort!r}: use low, medium or high")
        if self.genselect and not (0 < self.genselect_share <= 1 and self.genselect_candidates >= 2
                                   and self.genselect_chars >= 0 and self.genselect_tokens >= 1):
            raise ConfigError("solver.genselect: need 0 < genselect_share <= 1, genselect_candidates >= 2, "
                              "genselect_chars >= 0 and genselect_tokens >= 1")
        if policy.needs_selector and not self.selector:
            raise ConfigError(f"solver.vote = {self.vote!r} scores answers with a fitted selector: set solver.selector "
                              "to the file `build.py select fit` writes")
        if policy.needs_entropy and self.top_logprobs < 1:
            raise ConfigError(f"solver.vote = {self.vote!r} weighs answers by token entropy: set solver.top_logprobs "
                              ">= 1 (5 is what AIMO-3's winners used)")
        if self.top_logprobs < 0 or self.entropy_floor <= 0 or self.entropy_tail < 1:
            raise ConfigError("solver: need top_logprobs >= 0, entropy_floor > 0 and entropy_tail >= 1")
        if self.samples < 1 or self.min_samples < 1 or self.min_samples > self.samples:
            raise ConfigError("solver: need 1 <= min_samples <= samples")
        if self.max_rounds < 1:
            raise ConfigError("solver.max_rounds must be >= 1")
        if self.max_tokens_per_round < 1 or self.max_tokens_total < self.max_tokens_per_round:
            raise ConfigError("solver: need 1 <= max_tokens_per_round <= max_tokens_total")
        for rule in self.early_stop:
            if len(rule) != 2 or rule[0] < 1 or rule[1] < rule[0]:
                raise ConfigError(f"solver.early_stop rule {rule}: use [agree, out_of] with agree <= out_of")


@dataclass(frozen=True)
class BudgetConfig:
    """How the competition limit is shared between problems."""

    safety_margin_s: float = setting(600.0, help="Time kept back at the end for writing, shutdown and clock skew.")
    startup_estimate_s: float = setting(300.0, help="Engine start-up time: a crashed engine is restarted only while this much plus one problem's minimum remains (7B on an H100: ~230 s).")
    reserve_per_problem_s: float = setting(60.0, help="Time kept in reserve for each problem still to come (AIMO-3 kernels: 300 s).")
    split: str = setting("share", help="How a problem's time is planned: share (the time left / problems left, "
                                        "clamped, never into the others' reserve) or reserve (AIMO-3's winners: the "
                                        "time left - reserve_per_problem_s x the other problems left, clamped).")
    min_problem_s: float = setting(60.0, help="No problem is planned less time than this.")
    max_problem_s: float = setting(900.0, help="No problem is planned more time than this.")
    prior_tokens_per_sample: int = setting(2048, help="Prior for tokens one sample uses, before any are measured.")

    def __post_init__(self) -> None:
        if self.split not in ("share", "reserve"):
            raise ConfigError(f"budget.split = {self.split!r}: use share or reserve")
        if self.min_problem_s <= 0 or self.max_problem_s < self.min_problem_s:
            raise ConfigError("budget: need 0 < min_problem_s <= max_problem_s")


@dataclass(frozen=True)
class RunConfig:
    """Where the kernel reads problems and writes its outputs."""

    problems: str = setting("", help="local gateway input; empty on Kaggle (the server gives them)")
    output_dir: str = setting(".", help="Where results.jsonl, the submission and the summary are written.")
    shuffle_seed: int = setting(0, help="The local gateway serves problems in this shuffled order, as the real one does.")
    log_every_s: float = setting(30.0, help="Seconds between progress lines in the log.")


@dataclass(frozen=True)
class KernelConfig(Job):
    """Everything a submission kernel (and its dry-run and evaluation) needs."""

    what: ClassVar[str] = "kernel config"

    competition: CompetitionConfig = setting(default_factory=CompetitionConfig, help="The competition's rules.")
    engine: EngineConfig = setting(default_factory=EngineConfig, help="The model and its backend.")
    sandbox: SandboxConfig = setting(default_factory=SandboxConfig, help="Limits for model-written code.")
    solver: SamplingConfig = setting(default_factory=SamplingConfig, help="Sampling, tool rounds and voting.")
    budget: BudgetConfig = setting(default_factory=BudgetConfig, help="How the time limit is shared.")
    run: RunConfig = setting(default_factory=RunConfig, help="Inputs and outputs of one run.")

    @classmethod
    def _resolve_paths(cls, data: dict[str, Any], folder: Path) -> dict[str, Any]:
        """A local model or adapter named in the file is relative to the file, wherever the job runs from."""
        engine = data.get("engine")
        if isinstance(engine, dict):
            engine = {**engine, **{k: file_relative(engine[k], folder) for k in ("model", "lora") if k in engine}}
            data = {**data, "engine": engine}
        solver = data.get("solver")
        if isinstance(solver, dict) and "selector" in solver:
            data = {**data, "solver": {**solver, "selector": file_relative(solver["selector"], folder)}}
        return data


PATH_FIELDS = ("competition.data_dir", "engine.model", "engine.lora", "solver.selector", "run.problems",
               "run.output_dir")
INPUT_ROOT = "/kaggle/input"  # where Kaggle mounts a kernel's inputs; $AIMOKIT_INPUT overrides it


def expand_paths(cfg: KernelConfig, env: dict[str, str] | None = None) -> KernelConfig:
    """Resolve `$AIMOKIT_INPUT/...`-style paths where the kernel runs, not where it was built.

    A shipped config names inputs relative to the mount point ($AIMOKIT_INPUT,
    default /kaggle/input) and the adapters dataset ($AIMOKIT_ADAPTERS, set by
    the notebook), so the same file works on Kaggle and in a local rehearsal.
    """
    env = dict(os.environ if env is None else env)
    env.setdefault("AIMOKIT_INPUT", INPUT_ROOT)
    changes: dict[str, Any] = {}
    for dotted in PATH_FIELDS:
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if value.startswith("kaggle:"):  # an input named by its source: found under whichever layout holds it
            from . import mounts

            try:
                changes[dotted], how = mounts.resolve(value, env["AIMOKIT_INPUT"])
            except mounts.MountError as e:
                if dotted == "competition.data_dir":  # needed only on Kaggle's path, which names it if missing
                    continue
                raise ConfigError(f"{dotted}: {e}") from None
            except ValueError as e:
                raise ConfigError(f"{dotted}: {e}") from None
            continue
        if "$" not in value:
            continue
        expanded = _expand(value, env)
        if "$" in expanded:
            missing = re.findall(r"\$\{?(\w+)", expanded)
            hint = (" attach the adapters dataset to the kernel" if "AIMOKIT_ADAPTERS" in missing
                    else " set it in the environment")
            raise ConfigError(f"{dotted} = {value!r}: {', '.join(missing)} is not set;{hint}")
        changes[dotted] = expanded
    for dotted, value in section_strings(cfg):  # a path among a backend's settings (engine.vllm.extra...)
        if "$" in value and "$" not in (expanded := _expand(value, env)):
            changes[dotted] = expanded
    return cfg.override(changes) if changes else cfg


def section_strings(cfg: KernelConfig) -> list[tuple[str, str]]:
    """(dotted name, value) of every string in the backends' own settings, tables included: where a backend
    is handed a path (vLLM's tokenizer in engine.vllm.extra), found without a list of its fields."""
    found: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, str):
            found.append((prefix, value))

    for name, own in cfg.engine.backends.items():
        walk(f"engine.{name}", as_dict(own))
    return found


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


