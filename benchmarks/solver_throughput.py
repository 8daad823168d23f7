"""Solver throughput against raw vLLM `generate`, side by side on one engine, and the transformers backend.

    python benchmarks/solver_throughput.py --model DIR [--lora DIR] [--samples 16] [--problems 4] --out DIR
    python benchmarks/solver_throughput.py --model DIR --backend transformers --samples 8 --problems 1 --out DIR

The solver solves problems one at a time as the kernel does (concurrency =
samples), with tool rounds (CodeShim writes the code a random-weight model
cannot), the sandbox and voting. Raw vLLM then generates, from the same first
prompts at the same concurrency, exactly as many tokens per sample as the
solver's samples generated (ignore_eos), with the same LoRA. The ratio is the
share of raw throughput the solver keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import ROOT, CodeShim, now, versions, write

from aimokit.config import KernelConfig
from aimokit.problems import sample_problems
from aimokit.engine import create_engine
from aimokit.problems import load_problems
from aimokit.solver import Solver

AIME = sample_problems()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora", default="")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--problems-file", default=str(AIME))
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-tokens", type=int, default=512)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()

    cfg = KernelConfig.from_dict({
        "competition": {"name": "aimo3", "answer_max": 99999, "modulo": 0},
        "engine": {"backend": a.backend, "model": a.model, "lora": a.lora, "max_model_len": 8192,
                   "gpu_memory_utilization": 0.90, "max_num_seqs": 256, "enforce_eager": a.enforce_eager},
        "solver": {"samples": a.samples, "max_rounds": a.rounds - 1, "max_tokens_per_round": a.round_tokens,
                   "max_tokens_total": a.rounds * a.round_tokens, "early_stop": [], "early_stop_agree": 0},
    })
    problems = load_problems(a.problems_file)[: a.problems]
    t = now()
    inner = create_engine(cfg.engine)
    start_s = now() - t
    engine = CodeShim(inner)
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=cfg.engine.max_model_len)
    per_sample: list[list[int]] = []
    prompts: list[str] = []
    results = []
    warm = solver.solve(problems[:1], samples=a.samples)  # the first step pays for JIT and graph capture
    t = now()
    for p in problems:  # one problem at a time, as the kernel is fed
        r = solver.solve([p], samples=a.samples, keep_responses=True)[0]
        results.append(r)
        prompts.append(r.responses[0]["prompt"])
        per_sample.append([x["tokens"] for x in r.responses])
    solver_s = now() - t
    solver_tokens = sum(r.tokens for r in results)
    out = {
        "backend": a.backend, "lora": bool(a.lora), "samples": a.samples, "problems": len(problems),
        "rounds_per_sample": a.rounds, "round_tokens": a.round_tokens, "engine_start_s": round(start_s, 1),
        "solver_tokens": solver_tokens, "solver_s": round(solver_s, 2),
        "solver_tok_s": round(solver_tokens / solver_s, 1), "engine_rounds": engine.rounds,
        "code_runs": sum(r.code_runs for r in results),
        "answered": sum(r.answered for r in results), "warmup_tokens": warm[0].tokens, **versions(),
    }
    if a.backend == "vllm":
        from vllm import SamplingParams

        llm = inner.llm
        t = now()
        raw_tokens = 0
        for prompt, counts in zip(prompts, per_sample):  # same prompts, same concurrency, same token counts
            ids = inner.tokenizer.encode(prompt, add_special_tokens=False)
            params = [SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max(1, n), ignore_eos=True, seed=i)
                      for i, n in enumerate(counts)]
            outs = llm.generate([{"prompt_token_ids": ids}] * len(counts), params, lora_request=inner.lora,
                                use_tqdm=False)
            raw_tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        raw_s = now() - t
        out.update(raw_tokens=raw_tokens, raw_s=round(raw_s, 2), raw_tok_s=round(raw_tokens / raw_s, 1),
                   solver_over_raw=round((solver_tokens / solver_s) / (raw_tokens / raw_s), 3))
    solver.close()
    write(Path(a.out), f"solver_throughput_{a.backend}{'_lora' if a.lora else ''}_s{a.samples}", out)
    inner.close()


if __name__ == "__main__":
    sys.exit(main())
