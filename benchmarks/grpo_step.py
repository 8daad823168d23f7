"""A GRPO step through the kit's own `train` (method grpo), split into generation, scoring and the update.

    python benchmarks/grpo_step.py --model /root/dsm7b --steps 3 --use-vllm --out DIR

Generation is timed around vLLM's `LLM.generate` (colocated on the training GPU, as `use_vllm = true` runs it) or
transformers' `generate`; scoring around the kit's reward functions; the update is the rest of the trainer's step
time (loss, backward, optimizer, and the weight sync to vLLM). LoRA r16 on a 7B-shaped model with random weights.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

from common import versions, write

import aimokit.rewards as rewards
from aimokit.train import TrainConfig, train

SPENT = {"generate": 0.0, "score": 0.0, "generate_calls": 0}


def timed(fn, key):
    @functools.wraps(fn)  # TRL logs each reward under its function's name
    def wrapper(*args, **kwargs):
        t = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[key] += time.monotonic() - t
            if key == "generate":
                SPENT["generate_calls"] += 1
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--completion-tokens", type=int, default=512)
    ap.add_argument("--use-vllm", action="store_true")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()

    resolve = rewards.resolve
    rewards.resolve = lambda *args, **kw: [timed(f, "score") for f in resolve(*args, **kw)]
    if a.use_vllm:
        import vllm

        vllm.LLM.generate = timed(vllm.LLM.generate, "generate")
    else:
        from transformers import GenerationMixin

        GenerationMixin.generate = timed(GenerationMixin.generate, "generate")
    out = Path(a.out) / "grpo"
    cfg = TrainConfig(method="grpo", model=a.model, output_dir=str(out), limit=a.steps, max_steps=a.steps,
                      per_device_train_batch_size=a.generations, num_generations=a.generations,
                      max_completion_length=a.completion_tokens, logging_steps=1, save_steps=10_000, resume=False,
                      use_vllm=a.use_vllm, vllm_gpu_memory_utilization=0.35, rewards=["correct", "format", "length"],
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    t = time.monotonic()
    train(cfg)
    wall = time.monotonic() - t
    summary = json.loads((out / "train_summary.json").read_text())
    steps = summary["steps"]
    train_s = summary["seconds"]
    report = {"model": Path(a.model).name, "use_vllm": a.use_vllm, "steps": steps, "generations": a.generations,
              "completion_tokens": a.completion_tokens, "wall_s": round(wall, 1), "setup_s": summary["setup_s"],
              "train_s": train_s, "per_step_s": round(train_s / steps, 2),
              "generate_per_step_s": round(SPENT["generate"] / steps, 2),
              "score_per_step_s": round(SPENT["score"] / steps, 3),
              "update_per_step_s": round((train_s - SPENT["generate"] - SPENT["score"]) / steps, 2),
              "generate_calls": SPENT["generate_calls"], **versions()}
    print(f"-- grpo: {report}", flush=True)
    write(Path(a.out), "grpo_step", report)


if __name__ == "__main__":
    sys.exit(main())
