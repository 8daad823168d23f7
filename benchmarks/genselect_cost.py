"""What GenSelect costs at the kernel's shape: the same problems solved with it off and on, on one engine.

    python benchmarks/genselect_cost.py --model DIR [--lora DIR] --problems 4 --samples 8 --rounds 3 \\
        --round-tokens 512 --out DIR

The kernel solves one problem at a time (the gateway hands them out so), and GenSelect's request starts only
when a problem's samples are all in: it runs alone in the engine, a single sequence, at the end of every
problem whose vote is split. CodeShim (common.py) gives every sample of a random-weight model a different
answer, so every problem's vote is split and GenSelect always runs (`genselect_share` 1.0); it leaves the
selection request alone, so the model writes its reply to `genselect_tokens`, the worst case (a random model
boxes nothing: the vote stands). Reported: seconds per problem off and on, the extra seconds and share,
the selection reply's tokens, and its rate alone in the engine (the candidates' prefill included). What it is worth in
accuracy cannot be measured with random weights: replay's selection report on recorded responses says that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from common import CodeShim, engine_args, now, versions, write

from aimokit.config import KernelConfig
from aimokit.engine import create_engine
from aimokit.problems import load_problems, sample_problems
from aimokit.solver import Solver


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora", default="")
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-tokens", type=int, default=512)
    ap.add_argument("--genselect-tokens", type=int, default=2048)
    ap.add_argument("--genselect-chars", type=int, default=3000)
    engine_args(ap, max_model_len=8192)
    a = ap.parse_args()

    base = {"engine": {"model": a.model, "lora": a.lora, "dtype": a.dtype, "max_model_len": a.max_model_len,
                       "max_num_seqs": max(16, a.samples),
                       "vllm": {"gpu_memory_utilization": a.gpu_memory_utilization, "enforce_eager": a.enforce_eager,
                                "kv_cache_dtype": a.kv_cache_dtype, "max_lora_rank": 16}},
            "solver": {"samples": a.samples, "early_stop": [], "early_stop_agree": 0, "max_rounds": a.rounds - 1,
                       "max_tokens_per_round": a.round_tokens, "max_tokens_total": a.rounds * a.round_tokens,
                       "genselect_share": 1.0, "genselect_tokens": a.genselect_tokens,
                       "genselect_chars": a.genselect_chars, "genselect_min_s": 0.0}}
    off = KernelConfig.from_dict(base)
    on = off.override({"solver.genselect": True})
    problems = load_problems(sample_problems())[: a.problems]
    t = now()
    inner = create_engine(off.engine)
    report = {"model": Path(a.model).name, "lora": bool(a.lora), "engine_start_s": round(now() - t, 1),
              "problems": a.problems, "samples": a.samples, "rounds": a.rounds, "round_tokens": a.round_tokens,
              "genselect_tokens": a.genselect_tokens, "genselect_chars": a.genselect_chars,
              "kv_cache_dtype": a.kv_cache_dtype, "enforce_eager": a.enforce_eager, **versions()}
    warm = Solver(CodeShim(inner), off.override({"solver.max_rounds": 1, "solver.max_tokens_per_round": min(64, a.round_tokens)}).solver,
                  off.sandbox, off.competition, max_model_len=a.max_model_len)
    warm.solve(problems[:1])  # untimed: the shapes a first problem meets compile here
    warm.close()
    runs = {}
    for name, cfg in (("off", off), ("on", on)):
        solver = Solver(CodeShim(inner, vary_rounds=a.rounds), cfg.solver, cfg.sandbox, cfg.competition, max_model_len=a.max_model_len)
        seconds, tokens, picks = [], 0, []
        for p in problems:  # one at a time, as the gateway hands them to the kernel
            t = now()
            r = solver.solve([p])[0]
            seconds.append(now() - t)
            tokens += r.tokens  # with GenSelect on, its reply's tokens are counted in
            picks.append(r.genselect)
        solver.close()
        ran = sum(w.startswith(("picked", "the reply")) for w in picks)  # a selection request went to the engine
        runs[name] = {"s_per_problem": round(statistics.mean(seconds), 2), "tokens": tokens, "selections": ran,
                      "seconds": [round(x, 2) for x in seconds], "genselect": sorted(set(picks))[:3]}
        print(f"-- genselect {name}: {runs[name]}", flush=True)
    report["runs"] = runs
    extra = runs["on"]["s_per_problem"] - runs["off"]["s_per_problem"]
    report["extra_s_per_problem"] = round(extra, 2)
    report["extra_share"] = round(extra / runs["off"]["s_per_problem"], 3)
    reply = (runs["on"]["tokens"] - runs["off"]["tokens"]) / len(problems)  # the samples' own are the same
    report["reply_tokens_per_problem"] = round(reply, 1)
    if extra > 0:
        report["selection_tok_s"] = round(reply / extra, 1)  # prefill of the candidates included
    print(f"-- genselect cost: {report}", flush=True)
    write(Path(a.out), "genselect_cost", report)
    inner.close()


if __name__ == "__main__":
    sys.exit(main())
