"""Do two runs with the same config and seeds give the same answers? (AIMO-3 scores the private set twice.)

Each run is a fresh process with a fresh engine, as the two reruns are, and
solves the problems one at a time the way the kernel does (no time budget, so
only what is varied on purpose differs). Variants change one thing each:

- `rerun`: nothing; the same config again;
- `fewer-samples`: one sample fewer (7 of 8), as the budget plans when the
  measured speed differs, which changes what shares a batch with the others;
- `order`: the problems in another order, so the prefix cache holds other things;
- `no-prefix-cache`: prefix caching off (compared with itself in another order);
- `batch-invariant`: `VLLM_BATCH_INVARIANT=1`, vLLM's batch-invariant kernels
  (compared with a rerun of itself, and at one sample fewer);
- `sync`: `solver.sync_tool_rounds = true`, tool results re-enter only between
  rounds, in a fixed order (compared with a rerun of itself).

For each pair it reports the share of samples (problem, sample index) with the
same response text, with the same extracted answer, and the share of problems
whose voted answer is the same.

Usage: python3 rerun_identity.py --model DIR --problems-file F [--problems 30 --samples 8 --out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, versions, write

VARIANTS = {  # name: (overrides, env, one sample fewer, shuffled order)
    "base": ({}, {}, False, False),
    "rerun": ({}, {}, False, False),
    "fewer-samples": ({}, {}, True, False),
    "order": ({}, {}, False, True),
    "no-prefix-cache": ({"engine.vllm.enable_prefix_caching": False}, {}, False, False),
    "no-prefix-cache-order": ({"engine.vllm.enable_prefix_caching": False}, {}, False, True),
    "batch-invariant": ({}, {"VLLM_BATCH_INVARIANT": "1"}, False, False),
    "batch-invariant-rerun": ({}, {"VLLM_BATCH_INVARIANT": "1"}, False, False),
    "batch-invariant-fewer": ({}, {"VLLM_BATCH_INVARIANT": "1"}, True, False),
    "sync": ({"solver.sync_tool_rounds": True}, {}, False, False),
    "sync-rerun": ({"solver.sync_tool_rounds": True}, {}, False, False),
}
PAIRS = [("base", "rerun"), ("base", "fewer-samples"), ("base", "order"),
         ("no-prefix-cache", "no-prefix-cache-order"), ("batch-invariant", "batch-invariant-rerun"),
         ("batch-invariant", "batch-invariant-fewer"),
         ("base", "batch-invariant"), ("sync", "sync-rerun")]


def one(args: argparse.Namespace) -> None:
    """Child: solve every problem with one fresh engine, write every response."""
    sys.path.insert(0, str(ROOT / "src"))
    from aimokit.config import KernelConfig
    from aimokit.engine import create_engine
    from aimokit.problems import load_problems
    from aimokit.solver import Solver

    overrides, _, fewer, shuffled = VARIANTS[args.one]
    samples = args.samples - 1 if fewer else args.samples
    cfg = KernelConfig.from_dict({
        "competition": {"name": "aimo3", "answer_max": 99999, "modulo": 0},
        "engine": {"model": args.model, "max_model_len": 4096, "seed": 0,
                   "vllm": {"gpu_memory_utilization": args.memory, "enforce_eager": args.eager}},
        "solver": {"samples": args.samples, "min_samples": 1, "max_rounds": 3, "max_tokens_per_round": args.tokens,
                   "max_tokens_total": 3 * args.tokens, "temperature": 0.8, "seed": 0, "early_stop": []},
    }).override(overrides)
    problems = load_problems(args.problems_file, cfg.competition)[: args.problems]
    if shuffled:
        random.Random(1).shuffle(problems)
    t = time.monotonic()
    engine = create_engine(cfg.engine)
    start_s = time.monotonic() - t
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=cfg.engine.max_model_len)
    rows, tokens = [], 0
    t = time.monotonic()
    for p in problems:
        res = solver.solve([p], None, samples, keep_responses=True)[0]
        tokens += res.tokens
        rows += [{"id": p.id, "sample": r["sample"], "response": r["response"], "answer": r["answer"],
                  "voted": res.answer} for r in res.responses]
    gen_s = time.monotonic() - t
    solver.close()
    engine.close()
    Path(args.out, f"{args.one}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps({"variant": args.one, "samples": samples, "engine_start_s": round(start_s, 1),
                      "generation_s": round(gen_s, 1), "tokens": tokens}), flush=True)


def compare(a: list[dict], b: list[dict]) -> dict:
    ka = {(r["id"], r["sample"]): r for r in a}
    kb = {(r["id"], r["sample"]): r for r in b}
    common = sorted(set(ka) & set(kb))
    voted_a = {r["id"]: r["voted"] for r in a}
    voted_b = {r["id"]: r["voted"] for r in b}
    ids = sorted(set(voted_a) & set(voted_b))
    return {
        "samples_compared": len(common),
        "identical_responses": round(sum(ka[k]["response"] == kb[k]["response"] for k in common) / max(1, len(common)), 3),
        "identical_sample_answers": round(sum(ka[k]["answer"] == kb[k]["answer"] for k in common) / max(1, len(common)), 3),
        "problems_compared": len(ids),
        "identical_voted_answers": round(sum(voted_a[i] == voted_b[i] for i in ids) / max(1, len(ids)), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--problems-file", required=True)
    ap.add_argument("--problems", type=int, default=30)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=384, help="max tokens per round (3 rounds)")
    ap.add_argument("--memory", type=float, default=0.5, help="gpu_memory_utilization")
    ap.add_argument("--eager", action="store_true")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="rerun-out")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.one:
        return one(args)
    runs, failed = {}, {}
    for name in args.variants.split(","):
        env = dict(os.environ, **VARIANTS[name][1])
        cmd = [sys.executable, __file__, "--one", name, "--model", args.model, "--problems-file", args.problems_file,
               "--problems", str(args.problems), "--samples", str(args.samples), "--tokens", str(args.tokens),
               "--memory", str(args.memory), "--out", args.out] + (["--eager"] if args.eager else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            failed[name] = proc.stderr[-1500:]
            print(f"-- {name} failed:\n{proc.stderr[-1500:]}", flush=True)
            continue
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        Path(args.out, f"{name}.meta.json").write_text(json.dumps(runs[name]))
        print(f"-- {runs[name]}", flush=True)
    # Runs from an earlier call into the same --out count too (a call on the GPU machine is time-limited).
    for meta in Path(args.out).glob("*.meta.json"):
        runs.setdefault(meta.name[: -len(".meta.json")], json.loads(meta.read_text()))
    rows = {n: [json.loads(l) for l in Path(args.out, f"{n}.jsonl").read_text().splitlines()] for n in runs}
    pairs = {f"{a} vs {b}": compare(rows[a], rows[b]) for a, b in PAIRS if a in rows and b in rows}
    write(Path(args.out), "rerun_identity", {"runs": runs, "pairs": pairs, "failed": list(failed), **versions()})
    print("\n| pair | samples | identical responses | identical sample answers | identical voted answers |")
    print("|---|---|---|---|---|")
    for name, c in pairs.items():
        print(f"| {name} | {c['samples_compared']} | {c['identical_responses']:.1%} | "
              f"{c['identical_sample_answers']:.1%} | {c['identical_voted_answers']:.1%} |")


if __name__ == "__main__":
    main()
