"""DPO and SFT with TRL and a PEFT LoRA, from one typed config; the result is an adapter vLLM serves.

Like TRL's own trainers: a config dataclass and one entry, `train(cfg)`. It
resumes from the newest checkpoint in its output folder, writes the trainer's
log (loss, rewards, accuracies, margins) as JSON lines and a plot, and checks
the adapter it saves the way the kernel will load it (rank, target modules,
base-model shape) before calling the job done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .adapters import AdapterError, validate_adapter
from .config import ConfigError, load_job
from .errors import AimokitError
from .report import atomic_write

log = logging.getLogger(__name__)

COLUMNS = {"dpo": ("prompt", "chosen", "rejected"), "sft": ("prompt", "chosen")}


@dataclass
class TrainConfig:
    method: str = "dpo"  # "dpo" or "sft" (SFT learns the chosen responses)
    model: str = ""  # base model directory; empty: the embedded default
    train_file: str = "runs/dpo-data/train.parquet"
    val_file: str = ""  # optional; evaluated every eval_steps
    output_dir: str = "runs/train"
    init_adapter: str = ""  # continue training this adapter (its base must be `model`)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    learning_rate: float = 5e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0  # a fraction of the steps (transformers takes it as warmup_steps < 1)
    beta: float = 0.1  # DPO temperature
    # TRL's DPO losses, summed: "sigmoid" alone only widens the chosen-rejected margin (the chosen
    # response's own likelihood can stay low, the journal's 18 %); adding "sft" (RPO) makes it the mode.
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid", "sft"])
    loss_weights: list[float] = field(default_factory=list)  # one per loss_type; empty: all 1
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024  # prompt + response tokens (the journal's pairs: at most 937)
    gradient_checkpointing: bool = False
    precompute_ref_log_probs: bool = False  # one pass of the frozen model up front instead of every step
    dtype: str = "auto"  # "auto": bf16 on a GPU that has it, float32 on CPU
    logging_steps: int = 5
    save_steps: int = 100
    save_total_limit: int = 2
    eval_steps: int = 0  # 0: evaluate once at the end (when val_file is set)
    seed: int = 0
    resume: bool = True  # continue from the newest checkpoint in output_dir/checkpoints

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        cfg = load_job(cls, path, overrides, "train config")
        if cfg.method not in COLUMNS:
            raise ConfigError(f"method = {cfg.method!r}: use 'dpo' or 'sft'")
        return cfg


class TrainDataError(AimokitError, ValueError):
    """Training data that would train nothing, or the wrong thing."""


def _read(path: str, method: str) -> pl.DataFrame:
    if not Path(path).is_file():
        raise TrainDataError(f"{path}: no such file; build it with `build.py dpo-data`")
    df = pl.read_parquet(path)
    missing = [c for c in COLUMNS[method] if c not in df.columns]
    if missing:
        raise TrainDataError(f"{path}: {method} needs column(s) {missing}; it has {df.columns}")
    if df.height == 0:
        raise TrainDataError(f"{path}: no rows; nothing to train on")
    if method == "sft":  # prompt/completion, TRL's standard format
        return df.select("prompt", pl.col("chosen").alias("completion"))
    return df.select("prompt", "chosen", "rejected")


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


def train(cfg: TrainConfig) -> Path:
    """Train, save `output_dir/adapter`, validate it against the base model; returns the adapter path."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    if not cfg.model:
        from .models import resolve_model

        cfg = dataclasses.replace(cfg, model=resolve_model(""))
    train_df = _read(cfg.train_file, cfg.method)
    val_df = _read(cfg.val_file, cfg.method) if cfg.val_file else None
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
    else:
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    common = dict(
        output_dir=str(ckpt_dir), per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, logging_steps=cfg.logging_steps, save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, seed=cfg.seed, report_to=[], disable_tqdm=False,
        gradient_checkpointing=cfg.gradient_checkpointing, max_length=cfg.max_length,
        bf16=dtype == torch.bfloat16, use_cpu=not torch.cuda.is_available(),
        eval_strategy=("steps" if cfg.eval_steps else "no") if val_df is not None else "no",
        eval_steps=cfg.eval_steps or None,
    )
    t_setup = time.monotonic()  # trainer construction: tokenizing, and the reference pass when precomputed
    train_ds = Dataset.from_polars(train_df)
    val_ds = Dataset.from_polars(val_df) if val_df is not None else None
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(beta=cfg.beta, loss_type=list(cfg.loss_type), loss_weights=list(cfg.loss_weights) or None,
                         precompute_ref_log_probs=cfg.precompute_ref_log_probs, **common)
        trainer = DPOTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                             processing_class=tok, peft_config=peft_config)
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(completion_only_loss=True, **common)
        trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                             processing_class=tok, peft_config=peft_config)

    setup_s = time.monotonic() - t_setup
    last = get_last_checkpoint(str(ckpt_dir)) if cfg.resume else None
    if last:
        log.info("resuming from %s", last)
    t0 = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.monotonic() - t0
    if val_ds is not None:
        trainer.evaluate()

    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    try:
        validate_adapter(adapter, cfg.model)
    except AdapterError as e:
        raise AdapterError(f"the trained adapter would not load in the kernel: {e}") from e
    history = trainer.state.log_history
    atomic_write(out / "log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    summary = {"method": cfg.method, "adapter": str(adapter), "pairs": train_df.height, "steps": trainer.state.global_step,
               "seconds": round(seconds, 1), "setup_s": round(setup_s, 1), "resumed_from": last, "train_loss": result.training_loss,
               "final": {k: v for k, v in (history[-2] if len(history) > 1 else {}).items()},
               "config": asdict(cfg)}
    atomic_write(out / "train_summary.json", json.dumps(summary, indent=2, default=str))
    plot_history(history, out / "train_curves.png")
    return adapter


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")
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
