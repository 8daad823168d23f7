"""DPO, SFT and GRPO with TRL, a PEFT LoRA or every weight, from one typed config; the result is what vLLM serves.

Like TRL's own trainers: a config dataclass and one entry, `train(cfg)`. It
resumes from the newest checkpoint in its output folder, writes the trainer's
log (loss, rewards, accuracies, margins) as JSON lines and a plot, and checks
the adapter it saves the way the kernel will load it (rank, target modules,
base-model shape) before calling the job done. With `finetune = "full"` it
saves a whole model instead (`output_dir/model`, the kernel's `engine.model`).

The kit writes no distributed code: under `accelerate launch` (configs/accelerate/)
TRL's trainers shard and gather, the model is saved through the trainer (which
gathers FSDP / ZeRO-3 shards), and only the main process writes the log, the
summary and the plot.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from .adapters import AdapterError, validate_adapter
from .config import ConfigError, Job, setting
from .errors import AimokitError
from .io import atomic_write

log = logging.getLogger(__name__)

COLUMNS = {"dpo": ("prompt", "chosen", "rejected"), "sft": ("prompt", "chosen")}
TRACE_COLUMNS = ("prompt", "response")  # sft on traces from `build.py sft-data` (tool results masked)


@dataclass(frozen=True)
class TrainConfig(Job):
    """One training job. Fields named as in TRL / transformers are passed through under the same name;
    `extra` passes anything else to TRL's DPOConfig / SFTConfig verbatim."""

    what: ClassVar[str] = "train config"

    method: str = setting("dpo", help="'dpo'; 'sft': learns the traces of `build.py sft-data` (prompt, response, "
                                       "tool_spans: tool results masked), or the chosen responses of dpo-data pairs; "
                                       "'grpo': TRL's GRPO on labelled problems with the kit's rewards (see aimokit.grpo).")
    model: str = setting("", help="The base model directory; empty: the embedded default.")
    train_file: str = setting("runs/dpo-data/train.parquet", help="Pairs (dpo) or prompt/chosen rows (sft), parquet.")
    val_file: str = setting("", help="Optional; evaluated every eval_steps, or once at the end.")
    output_dir: str = setting("runs/train", help="Checkpoints, the adapter, the log and the curves go here.")
    init_adapter: str = setting("", help="Continue training this adapter (its base must be `model`).")
    finetune: str = setting("lora", help="'lora': a PEFT LoRA adapter (output_dir/adapter, the kernel's engine.lora); "
                                         "'full': every weight (output_dir/model, the kernel's engine.model; needs "
                                         "the memory of the weights, gradients and optimizer state: FSDP or ZeRO-3 "
                                         "past one GPU, see configs/accelerate/).")
    lora_r: int = setting(16, help="LoRA rank.")
    lora_alpha: int = setting(32, help="LoRA alpha (the update is scaled by alpha / r).")
    lora_dropout: float = setting(0.0, help="LoRA dropout.")
    target_modules: list[str] = setting(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                        help="The modules LoRA adapts.")
    learning_rate: float = setting(5e-5, help="TRL / transformers learning_rate.")
    lr_scheduler_type: str = setting("cosine", help="TRL / transformers lr_scheduler_type.")
    warmup_steps: float = setting(0.0, help="TRL / transformers warmup_steps: a count, or below 1 a fraction of the steps.")
    beta: float | None = setting(None, help="TRL beta: DPO's temperature, GRPO's KL coefficient; unset: TRL's default "
                                            "for the method (dpo 0.1, grpo 0: no reference model).")
    loss_type: list[str] = setting(
        default_factory=lambda: ["sigmoid", "sft"],
        help="TRL's DPO losses, summed: 'sigmoid' alone only widens the chosen-rejected margin (the chosen response's "
             "own likelihood can stay low, the journal's 18 %); adding 'sft' (RPO) makes it the mode. Also 'ipo', and "
             "'nca_pair' (AIMO-2's 2nd place, with pairs that prefer shorter correct answers: dpo-data prefer_shorter).")
    loss_weights: list[float] = setting(default_factory=list, help="One per loss_type; empty: all 1.")
    num_train_epochs: float = setting(1.0, help="TRL / transformers num_train_epochs.")
    max_steps: int = setting(-1, help="Above 0, overrides num_train_epochs.")
    per_device_train_batch_size: int = setting(4, help="Sequences per device and step (also used for evaluation).")
    gradient_accumulation_steps: int = setting(1, help="Steps whose gradients are summed before an update.")
    max_length: int = setting(1024, help="Prompt plus response tokens (the journal's pairs: at most 937).")
    packing: bool = setting(False, help="sft: TRL packing, several traces to one max_length sequence (labels kept).")
    gradient_checkpointing: bool = setting(False, help="Recompute activations in the backward pass: less memory, slower.")
    liger: bool = setting(False, help="Liger's fused Triton kernels (transformers use_liger_kernel: RMSNorm, RoPE, SwiGLU, "
                                      "fused linear cross-entropy): less memory at long sequences. Needs a CUDA GPU "
                                      "and `pip install liger-kernel`.")
    precompute_ref_log_probs: bool = setting(False, help="One pass of the frozen model up front instead of every step. "
                                                         "TRL first hashes every weight on the CPU to key its cache "
                                                         "(~50 s for a 7B model, measured): worth it only over several epochs.")
    dtype: str = setting("auto", help="'auto': bf16 on a GPU that has it, float32 on CPU.")
    logging_steps: int = setting(5, help="Steps between log lines (log.jsonl).")
    save_steps: int = setting(100, help="Steps between checkpoints.")
    save_total_limit: int = setting(2, help="Checkpoints kept.")
    eval_steps: int = setting(0, help="Steps between evaluations; 0: once at the end (when val_file is set).")
    seed: int = setting(0, help="TRL / transformers seed.")
    resume: bool = setting(True, help="Continue from the newest checkpoint in output_dir/checkpoints.")
    # grpo
    problems: str = setting("", help="grpo: labelled problems (csv, parquet or jsonl); empty: the 30 AIME 2024 problems.")
    limit: int = setting(0, help="grpo: only the first N problems; 0: all.")
    kernel_config: str = setting("", help="grpo: the kernel config whose protocol, prompt and competition render the "
                                          "problems and grade the answers; empty: the kernel defaults (fenced).")
    rewards: list[str] = setting(default_factory=lambda: ["correct", "format"],
                                 help="grpo: correct (the kernel's grader), format (a closed box where the protocol "
                                      "reads answers), length (a penalty past length_target), or module:function.")
    reward_weights: list[float] = setting(default_factory=list, help="grpo: one per reward; empty: all 1.")
    length_target: int = setting(1024, help="grpo: the length reward is 0 up to this many tokens, then -1 per as many more.")
    num_generations: int = setting(8, help="grpo: completions per prompt (TRL num_generations).")
    max_completion_length: int = setting(1024, help="grpo: tokens per completion (TRL max_completion_length).")
    temperature: float = setting(1.0, help="grpo: rollout sampling temperature.")
    use_vllm: bool = setting(False, help="grpo: roll out with vLLM (TRL's integration) instead of transformers generate.")
    vllm_mode: str = setting("colocate", help="grpo: 'colocate' (vLLM on the training GPU) or 'server' (trl vllm-serve).")
    vllm_gpu_memory_utilization: float = setting(0.3, help="grpo, colocate: the share of GPU memory vLLM takes.")
    extra: dict[str, Any] = setting(default_factory=dict, help="Any other DPOConfig / SFTConfig / GRPOConfig field, verbatim.")

    def __post_init__(self) -> None:
        if self.method not in (*COLUMNS, "grpo"):
            raise ConfigError(f"method = {self.method!r}: use 'dpo', 'sft' or 'grpo'")
        if self.finetune not in ("lora", "full"):
            raise ConfigError(f"finetune = {self.finetune!r}: use 'lora' or 'full'")
        if self.finetune == "full" and self.init_adapter:
            raise ConfigError("init_adapter continues a LoRA; with finetune = 'full' set model to the weights to start from")
        if self.method == "grpo":
            from .rewards import BUILT_IN

            bad = [r for r in self.rewards if r not in BUILT_IN and ":" not in r]
            if bad or not self.rewards:
                raise ConfigError(f"rewards {bad or '[]'}: use {', '.join(BUILT_IN)} or module:function")
            if self.reward_weights and len(self.reward_weights) != len(self.rewards):
                raise ConfigError(f"reward_weights has {len(self.reward_weights)} entries for {len(self.rewards)} rewards")
            if self.num_generations < 2:
                raise ConfigError("num_generations must be >= 2: GRPO's advantage compares completions of one prompt")
            if self.vllm_mode not in ("colocate", "server"):
                raise ConfigError(f"vllm_mode = {self.vllm_mode!r}: use colocate or server")
        unknown = [t for t in self.loss_type if t not in DPO_LOSSES]
        if unknown or not self.loss_type:
            raise ConfigError(f"loss_type {unknown or '[]'}: use one or more of {', '.join(DPO_LOSSES)} (TRL's DPO losses)")
        if self.loss_weights and len(self.loss_weights) != len(self.loss_type):
            raise ConfigError(f"loss_weights has {len(self.loss_weights)} entries for {len(self.loss_type)} loss_type")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("need per_device_train_batch_size >= 1 and gradient_accumulation_steps >= 1")
        modelled = {f.name for f in dataclasses.fields(self)}
        clash = sorted(set(self.extra) & (modelled | _SET_BY_KIT))
        if clash:
            raise ConfigError(f"extra sets {clash}, which the kit sets itself or models as a field; set the field instead")


# TRL 1.16's DPO losses (DPOTrainer refuses any other name, but only once the model is loaded).
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")

_SET_BY_KIT = {"output_dir", "report_to", "bf16", "use_cpu", "eval_strategy", "per_device_eval_batch_size",
               "completion_only_loss", "use_liger_kernel"}


class TrainDataError(AimokitError, ValueError):
    """Training data that would train nothing, or the wrong thing."""


def _read(path: str, method: str) -> pl.DataFrame:
    if not Path(path).is_file():
        raise TrainDataError(f"{path}: no such file; build it with `build.py dpo-data`")
    df = pl.read_parquet(path)
    if method == "sft" and all(c in df.columns for c in TRACE_COLUMNS):
        spans = pl.col("tool_spans") if "tool_spans" in df.columns else pl.lit(None, pl.List(pl.List(pl.Int64)))
        if df.height == 0:
            raise TrainDataError(f"{path}: no rows; nothing to train on")
        return df.select("prompt", "response", spans.alias("tool_spans"))
    missing = [c for c in COLUMNS[method] if c not in df.columns]
    if missing:
        raise TrainDataError(f"{path}: {method} needs column(s) {missing}; it has {df.columns}")
    if df.height == 0:
        raise TrainDataError(f"{path}: no rows; nothing to train on")
    if method == "sft":  # prompt/completion, TRL's standard format
        return df.select("prompt", pl.col("chosen").alias("completion"))
    return df.select("prompt", "chosen", "rejected")


def _dataset(df: pl.DataFrame, tok, cfg: "TrainConfig"):
    """A datasets.Dataset for TRL: traces tokenized here with their masks (TRL takes input_ids and labels as they
    are); dpo pairs and prompt/completion rows as text, for TRL to tokenize."""
    from datasets import Dataset

    if "response" not in df.columns:
        return Dataset.from_polars(df)
    from .sft_data import TraceTooLong, tokenize_trace

    rows, too_long = [], 0
    for r in df.iter_rows(named=True):
        try:
            rows.append(tokenize_trace(tok, r["prompt"], r["response"], r["tool_spans"], cfg.max_length))
        except TraceTooLong:
            too_long += 1
    if not rows:
        raise TrainDataError(f"all {df.height} traces are longer than max_length = {cfg.max_length} tokens: raise "
                             "max_length (with gradient_checkpointing for 16k and more) or keep shorter traces "
                             "(sft-data shortest_k)")
    if too_long:
        log.warning("%d of %d traces are longer than max_length = %d tokens and are left out", too_long, df.height,
                    cfg.max_length)
    return Dataset.from_list(rows)


def _dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if name in ("bfloat16", "float16") and not torch.cuda.is_available():
        # Measured on a 2-core AVX2 CPU (torch 2.13): a bf16 backward of SmolLM2-135M took 448 s against 10 s in
        # float32. CPUs without native bf16 emulate it, so say so instead of training for hours.
        log.warning("dtype=%s on a CPU: training is emulated and can be ~40x slower than float32 "
                    "(dtype = \"auto\" picks float32 on CPU)", name)
    return getattr(torch, name)


def _check_liger() -> None:
    import importlib.util

    import torch

    if importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError("liger = true, but liger-kernel is not installed: `pip install liger-kernel` "
                          "(or set liger = false)")
    if not torch.cuda.is_available():
        raise ConfigError("liger = true needs a CUDA GPU (Liger's kernels are Triton GPU kernels); set liger = false")


def _step_timer():
    """A trainer callback that keeps each optimizer step's wall time: the first steps carry compilation and
    warm-up, so a steady-state rate (the benchmarks' tok/s, a user's ETA) comes from the later ones."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(round(time.monotonic() - self._t, 4))

    return StepTimer()


def train(cfg: TrainConfig) -> Path:
    """Train; save `output_dir/adapter` (validated against the base model) or, full, `output_dir/model`; return it."""
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    from .models import resolve_model

    cfg = dataclasses.replace(cfg, model=resolve_model(cfg.model))  # empty: the embedded default
    if cfg.liger:
        _check_liger()
    grpo = cfg.method == "grpo"
    train_df = None if grpo else _read(cfg.train_file, cfg.method)
    val_df = _read(cfg.val_file, cfg.method) if cfg.val_file and not grpo else None
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if cfg.init_adapter:
        validate_adapter(cfg.init_adapter, cfg.model)  # a mismatched base is an error here, not garbage later

    tok = AutoTokenizer.from_pretrained(cfg.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = _dtype(cfg.dtype)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype)
    peft_config = None
    if cfg.init_adapter:
        model = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
    elif cfg.finetune == "lora":
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    batch = cfg.per_device_train_batch_size
    common = dict(
        output_dir=str(ckpt_dir), per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps, logging_steps=cfg.logging_steps, save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, seed=cfg.seed, report_to=[], disable_tqdm=False,
        gradient_checkpointing=cfg.gradient_checkpointing, max_length=cfg.max_length, use_liger_kernel=cfg.liger,
        bf16=dtype == torch.bfloat16, use_cpu=not torch.cuda.is_available(),
        eval_strategy=("steps" if cfg.eval_steps else "no") if val_df is not None else "no",
        eval_steps=cfg.eval_steps or None,
        **cfg.extra,
    )
    t_setup = time.monotonic()  # trainer construction: tokenizing, and the reference pass when precomputed
    train_ds = None if grpo else _dataset(train_df, tok, cfg)
    val_ds = _dataset(val_df, tok, cfg) if val_df is not None else None
    if grpo:
        from .grpo import trainer as grpo_trainer

        trainer = grpo_trainer(cfg, model, tok, peft_config, common)
        train_ds = trainer.train_dataset
    elif cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(beta=0.1 if cfg.beta is None else cfg.beta, loss_type=list(cfg.loss_type), loss_weights=list(cfg.loss_weights) or None,
                         precompute_ref_log_probs=cfg.precompute_ref_log_probs, **common)
        trainer = DPOTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                             processing_class=tok, peft_config=peft_config)
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(completion_only_loss=True, packing=cfg.packing, **common)
        trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                             processing_class=tok, peft_config=peft_config)

    setup_s = time.monotonic() - t_setup
    timer = _step_timer()
    trainer.add_callback(timer)
    last = get_last_checkpoint(str(ckpt_dir)) if cfg.resume else None
    if last:
        log.info("resuming from %s", last)
    t0 = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.monotonic() - t0
    if val_ds is not None:
        trainer.evaluate()

    full = cfg.finetune == "full"
    saved = out / ("model" if full else "adapter")
    trainer.save_model(str(saved))  # through the trainer: FSDP / ZeRO-3 shards are gathered first
    if not trainer.is_world_process_zero():
        return saved
    if not full:
        try:
            validate_adapter(saved, cfg.model)
        except AdapterError as e:
            raise AdapterError(f"the trained adapter would not load in the kernel: {e}") from e
    history = trainer.state.log_history
    atomic_write(out / "log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    summary = {"method": cfg.method, "finetune": cfg.finetune, "saved": str(saved), "pairs": len(train_ds),
               "steps": trainer.state.global_step, "processes": trainer.accelerator.num_processes,
               "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
               "seconds": round(seconds, 1), "setup_s": round(setup_s, 1), "step_seconds": timer.seconds,
               "resumed_from": last,
               "train_loss": result.training_loss,
               "final": {k: v for k, v in (history[-2] if len(history) > 1 else {}).items()},
               "config": asdict(cfg)}
    atomic_write(out / "train_summary.json", json.dumps(summary, indent=2, default=str))
    plot_history(history, out / "train_curves.png")
    return saved


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "reward", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")
            if any(k in h for h in history)]
    if not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3))
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys):
        pts = [(h["step"], h[key]) for h in history if key in h and "step" in h]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
