"""SFT with LoRA on long traces through the kit's own `train` (method sft): tokens/s and peak GPU memory.

    python benchmarks/sft_speed.py --model /root/dsm7b --lengths 8192,16384 --steps 6 --out DIR [--liger]

Each length gets its own run: traces of that many tokens (random text from the model's tokenizer, a short
prompt, two masked tool results), batch 1, gradient checkpointing on, LoRA r16 on the attention and MLP
projections. tok/s is steps x length over the trainer's own train time (first step's warm-up included: use
enough steps that it does not matter).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from common import versions, write

from aimokit.train import TrainConfig, train


def traces(tokenizer, length: int, n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(min(tokenizer.vocab_size, 40000)) if i not in special]
    rows = []
    for _ in range(n):
        ids = [rng.choice(vocab) for _ in range(length)]
        text = tokenizer.decode(ids)
        ids = tokenizer.encode(text, add_special_tokens=False)[: length - 200]  # room for the prompt and EOS
        body = tokenizer.decode(ids)
        cut = len(body) // 3
        tool = "\n```output\n42\n```\n"
        response = body[:cut] + tool + body[cut: 2 * cut] + tool + body[2 * cut:]
        spans = [[cut, cut + len(tool)], [2 * cut + len(tool), 2 * cut + 2 * len(tool)]]
        rows.append({"prompt": "Solve: what is 6 * 7?\n", "response": response, "tool_spans": spans})
    return rows


def main() -> None:
    import polars as pl
    import torch
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lengths", default="8192,16384")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--liger", action="store_true", help="Liger's fused kernels (TrainConfig.liger)")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    out = Path(a.out)
    tok = AutoTokenizer.from_pretrained(a.model)
    report = {"model": Path(a.model).name, "liger": a.liger, "runs": [], **versions()}
    for length in (int(x) for x in a.lengths.split(",")):
        work = out / f"sft-{length}"
        work.mkdir(parents=True, exist_ok=True)
        data = work / "traces.parquet"
        pl.DataFrame(traces(tok, length, a.steps)).write_parquet(data)
        cfg = TrainConfig(method="sft", model=a.model, train_file=str(data), output_dir=str(work / "run"),
                          max_length=length + 64, per_device_train_batch_size=1, max_steps=a.steps,
                          gradient_checkpointing=True, logging_steps=1, save_steps=10_000, resume=False,
                          learning_rate=1e-4, liger=a.liger,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        torch.cuda.reset_peak_memory_stats()
        t = time.monotonic()
        train(cfg)
        wall = time.monotonic() - t
        peak = torch.cuda.max_memory_allocated() / 2**30
        summary = json.loads((work / "run" / "train_summary.json").read_text())
        steps = [json.loads(line) for line in (work / "run" / "log.jsonl").read_text().splitlines()]
        run = {"length": length, "steps": summary["steps"], "train_s": summary["seconds"], "wall_s": round(wall, 1),
               "peak_gib": round(peak, 1)}
        run["tok_s"] = round(summary["steps"] * length / summary["seconds"], 1)
        run["log"] = [{k: s[k] for k in ("step", "loss") if k in s} for s in steps if "loss" in s]
        print(f"-- sft {length}: {run}", flush=True)
        report["runs"].append(run)
        write(out, "sft_speed", report)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
