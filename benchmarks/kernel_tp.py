"""The submission kernel with a tensor-parallel engine, through the local gateway: what a multi-GPU Kaggle shape
(AIMO-2's 4 x L4) runs.

    CUDA_VISIBLE_DEVICES=0,1 python benchmarks/kernel_tp.py --model /root/dsm7b --tp 2 --out DIR

It is `build.py dry-run` (kernels/submission.py in a fresh interpreter, problems served one at a time by the
gateway, submission.parquet written) on the dry-run config with the engine set for a GPU: the given model,
bf16, CUDA graphs, `engine.tensor_parallel_size = --tp`. With random weights no sample writes code or an
answer, so every sample runs to its token limit and each problem is the same work whatever the TP size: the
kernel's tokens / generation seconds compare across runs. Run one TP size per call, on its own GPUs; runs on
disjoint GPUs of one machine may go side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, versions, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--problems", type=int, default=6)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=1024, help="tokens a sample writes (one round)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--time-limit", type=float, default=1800)
    ap.add_argument("--extra", default="", help='engine.vllm.extra as JSON, e.g. \'{"disable_custom_all_reduce": true}\'')
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (and no compile): a quick smoke run")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    out = Path(a.out).resolve() / f"tp{a.tp}"
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (ROOT / "src/aimokit/data/aime24.jsonl").read_text().splitlines()][: a.problems]
    problems = out / "problems.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = {"engine.model": a.model, "engine.tensor_parallel_size": a.tp, "engine.dtype": a.dtype,
            "engine.vllm.enforce_eager": str(a.enforce_eager).lower(), "engine.vllm.gpu_memory_utilization": a.gpu_memory_utilization,
            "engine.max_model_len": 4096, "engine.max_num_seqs": max(64, a.samples),
            "solver.samples": a.samples, "solver.min_samples": a.samples, "solver.max_rounds": 1,
            "solver.max_tokens_per_round": a.tokens, "solver.max_tokens_total": a.tokens,
            "budget.max_problem_s": a.time_limit, "budget.startup_estimate_s": 300}
    if a.extra:
        sets["engine.vllm.extra"] = json.dumps(json.loads(a.extra))  # vllm.LLM keyword arguments, verbatim
    cmd = [sys.executable, str(ROOT / "build.py"), "dry-run", "--problems", str(problems), "--time-limit",
           str(a.time_limit), "--out", str(out / "run"), *[f"--set={k}={v}" for k, v in sets.items()]]
    t = time.monotonic()
    with open(out / "dry-run.log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).returncode
    wall = time.monotonic() - t
    report = {"tp": a.tp, "extra": a.extra, "returncode": rc, "wall_s": round(wall, 1), "model": Path(a.model).name,
              "problems": a.problems, "samples": a.samples, "tokens_per_sample": a.tokens, **versions()}
    rep_file = out / "run" / "report.json"
    if rep_file.is_file():
        rep = json.loads(rep_file.read_text())
        summary = json.loads((out / "run" / "kernel_summary.json").read_text())
        report.update(complete=rep["complete"], answered=rep["problems_answered"], tokens=rep["tokens"],
                      generation_s=summary.get("generation_s"), engine_start_s=summary.get("engine_start_s"),
                      tok_s=round(rep["tokens"] / summary["generation_s"], 1) if summary.get("generation_s") else None,
                      stopped=rep["stopped"])
    else:
        report["log_tail"] = (out / "dry-run.log").read_text(errors="replace")[-2000:]
    print(f"-- kernel tp={a.tp}: {report}", flush=True)
    write(out, f"kernel_tp{a.tp}", report)


if __name__ == "__main__":
    sys.exit(main())
