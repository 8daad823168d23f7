"""A competition in miniature: 50 problems, a scaled-down limit that includes engine start, the real kernel.

    python benchmarks/budget_sim.py --model DIR [--lora DIR] --limit-s 480 --out DIR

The Kernel is fed one problem at a time through the local gateway, exactly as
on Kaggle; CodeShim makes the random-weight model write code so samples take
tool rounds. Checks: the run ends inside the limit, every problem is answered,
and the share of the limit spent generating.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl
from common import ROOT, CodeShim, versions, write

from aimokit.config import KernelConfig
from aimokit.problems import sample_problems
from aimokit.engine import create_engine
from aimokit.kernel import Kernel
from aimokit.serving import serve

AIME = sample_problems()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora", default="")
    ap.add_argument("--problems-file", default=str(AIME))
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--limit-s", type=float, default=480.0)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    out = Path(a.out)
    base = pl.read_ndjson(a.problems_file).select(pl.col("id").cast(pl.String), "problem", "answer")
    reps = -(-a.problems // base.height)
    probs = pl.concat([base.with_columns(pl.col("id") + f"-{i}") for i in range(reps)]).head(a.problems)
    pfile = out / "problems.csv"
    out.mkdir(parents=True, exist_ok=True)
    probs.write_csv(pfile)
    cfg = KernelConfig.from_dict({
        "competition": {"name": "aimo3", "answer_max": 99999, "modulo": 0, "time_limit_s": a.limit_s,
                        "expected_problems": a.problems},
        "engine": {"model": a.model, "lora": a.lora, "max_model_len": 8192,
                   "vllm": {"gpu_memory_utilization": 0.90, "enforce_eager": a.enforce_eager}},
        "solver": {"samples": 16, "max_rounds": 2, "max_tokens_per_round": 1024, "max_tokens_total": 3072},
        "budget": {"safety_margin_s": 20.0, "startup_estimate_s": 120.0, "reserve_per_problem_s": 0.5,
                   "min_problem_s": 1.0, "max_problem_s": 60.0, "prior_tokens_per_sample": 1500},
        "run": {"problems": str(pfile), "output_dir": str(out / "kernel")},
    })
    t0 = time.monotonic()
    kernel = Kernel(cfg, total_problems=a.problems, engine_factory=lambda c: CodeShim(create_engine(c.engine)),
                    started_at=t0)
    serve(cfg, kernel)
    wall = time.monotonic() - t0
    summary = json.loads((out / "kernel" / "kernel_summary.json").read_text())
    sub = pl.read_parquet(out / "kernel" / "submission.parquet")
    rows = [json.loads(l) for l in (out / "kernel" / "results.jsonl").read_text().splitlines()]
    res = {
        "problems": a.problems, "limit_s": a.limit_s, "wall_s": round(wall, 1), "inside_limit": wall < a.limit_s,
        "answered": sub.height, "all_answered": sub.height == a.problems,
        "engine_start_s": summary["engine_start_s"], "generation_s": summary["generation_s"],
        "generation_share_of_limit": round(summary["generation_s"] / a.limit_s, 3),
        "generation_share_after_start": round(summary["generation_s"] / (a.limit_s - summary["engine_start_s"]), 3),
        "tokens": summary["tokens"], "samples_per_problem": [r.get("samples") for r in rows],
        "stopped": {s: sum(1 for r in rows if r.get("stopped") == s) for s in {r.get("stopped") for r in rows}},
        **versions(),
    }
    write(out, "budget_sim", res)


if __name__ == "__main__":
    main()
