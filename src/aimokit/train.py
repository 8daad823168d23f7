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
from dataclasses import asdict
from pathlib import Path
from typing import Any


from .adapters import AdapterError, validate_adapter
from .config import ConfigError
from .io import atomic_write

log = logging.getLogger(__name__)

from .registry import METHODS
from .train_config import DPO_LOSSES, TrainConfig  # noqa: F401  (the job's config)
from .train_data import TrainDataError, dataset  # noqa: F401  (TrainDataError: what a bad file raises)


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


def check_method_args(cfg: TrainConfig) -> None:
    """The method's section against the fields of its TRL config: a misspelt key fails here, not after the model
    loaded; the old `extra` is read as the section, and said."""
    import trl

    if cfg.extra:
        log.warning("train config: `extra` is read as [%s]; write it as that section (extra is its old name)",
                    cfg.method)
    trl_config = METHODS.get(cfg.method).trl_config
    fields = {f.name for f in dataclasses.fields(getattr(trl, trl_config))}
    unknown = sorted(set(cfg.method_args()) - fields)
    if unknown:
        raise ConfigError(f"[{cfg.method}] sets {unknown}, which TRL {trl.__version__}'s {trl_config} "
                          "does not have; check the names against TRL's documentation")


def train(cfg: TrainConfig) -> Path:
    """Train; save `output_dir/adapter` (validated against the base model) or, full, `output_dir/model`; return it."""
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    from .models import resolve_model

    check_method_args(cfg)  # before any model is loaded
    cfg = dataclasses.replace(cfg, model=resolve_model(cfg.model))  # empty: the embedded default
    if cfg.liger:
        _check_liger()
    method = METHODS.get(cfg.method)  # methods/<name>.py: what it reads, how it builds its TRL trainer
    train_df = method.read(cfg.train_file) if method.reads_files else None
    val_df = method.read(cfg.val_file) if cfg.val_file and method.reads_files else None
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
    )
    t_setup = time.monotonic()  # trainer construction: tokenizing, and the reference pass when precomputed
    train_ds = dataset(train_df, tok, cfg.max_length) if train_df is not None else None
    val_ds = dataset(val_df, tok, cfg.max_length) if val_df is not None else None
    trainer = method.trainer(cfg, model, tok, peft_config, common, train_ds, val_ds)
    train_ds = train_ds if train_ds is not None else trainer.train_dataset  # grpo: its rendered problems

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
