"""DPO + LoRA training speed and peak GPU memory on the 7B shape, at the journal's lengths.

    python benchmarks/dpo_speed.py --model DIR [--precompute-ref] --out DIR

Pairs are synthetic (random text) cut to the journal's lengths: prompt 296
tokens, prompt + response 937. Training goes through aimokit.train (TRL
DPOTrainer + PEFT LoRA r16 on attention, gradient checkpointing on), so the
figure is the kit's, not a hand-written loop's. Run once per setting: peak
memory is per process.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import polars as pl
from common import versions, write

from aimokit.train import TrainConfig, train


def text_of(tok, n: int, rng: random.Random) -> str:
    ids = [rng.randrange(1000, 40000) for _ in range(n)]
    return tok.decode(ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", type=int, default=32)  # = steps x batch: the reference pass covers what is trained
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--precompute-ref", action="store_true")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    import torch
    from transformers import AutoTokenizer

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(a.model)
    rng = random.Random(0)
    rows = [{"prompt": text_of(tok, 296, rng), "chosen": text_of(tok, 641, rng), "rejected": text_of(tok, 641, rng)}
            for _ in range(a.pairs)]
    data = out / "pairs.parquet"
    pl.DataFrame(rows).write_parquet(data)
    tag = "precomputed_ref" if a.precompute_ref else "live_ref"
    cfg = TrainConfig(model=a.model, train_file=str(data), output_dir=str(out / f"dpo-{tag}"), max_steps=a.steps,
                      per_device_train_batch_size=a.batch, max_length=937, gradient_checkpointing=True, learning_rate=5e-5,
                      precompute_ref_log_probs=a.precompute_ref, dtype="bfloat16", logging_steps=1, save_steps=10_000,
                      resume=False)
    torch.cuda.reset_peak_memory_stats()
    train(cfg)
    summary = json.loads((out / f"dpo-{tag}" / "train_summary.json").read_text())
    lengths = [len(tok(r["prompt"] + r["chosen"])["input_ids"]) for r in rows[: a.batch * a.steps]]
    tokens = 2 * sum(min(937, n) for n in lengths)  # chosen and rejected sequences both go through the policy
    write(out, f"dpo_{tag}", {
        "setting": tag, "steps": summary["steps"], "batch": a.batch, "train_s": summary["seconds"],
        "setup_s": summary["setup_s"], "pairs_in_dataset": a.pairs, "tokens": tokens,
        "tokens_per_s": round(tokens / summary["seconds"], 1),
        "tokens_per_s_with_setup": round(tokens / (summary["seconds"] + summary["setup_s"]), 1),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "lora_r": cfg.lora_r,
        "gradient_checkpointing": True, **versions()})


if __name__ == "__main__":
    main()
