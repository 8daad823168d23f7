"""Solver throughput against raw vLLM `generate`, side by side on one engine, and the transformers backend.

    python benchmarks/solver_throughput.py --model DIR [--lora DIR] --shapes 16x3x512x4,64x8x512x2 --out DIR
    python benchmarks/solver_throughput.py --model DIR --protocol harmony --sessions --shapes 8x4x512x4 --out DIR
    python benchmarks/solver_throughput.py --model DIR --backend transformers --shapes 8x3x512x1 --out DIR

A shape is SAMPLESxROUNDSxROUND_TOKENSxPROBLEMS; every shape runs on the one
engine (started once), and each shape's figures are printed as soon as they
are measured.

The solver solves problems one at a time as the kernel does (concurrency =
samples), with tool rounds (CodeShim writes the code a random-weight model
cannot, in the protocol under test), the sandbox (a fresh process per block, or
persistent sessions with --sessions) and voting. Raw vLLM then generates, from the same first
prompts at the same concurrency, exactly as many tokens per sample as the
solver's samples generated (ignore_eos), with the same LoRA. The ratio is the
share of raw throughput the solver keeps. With the vLLM backend each phase also reports the kernel compiles
seen inside it (CompileWatch: vLLM's JIT monitor, verbose), so a run that compiled in a timed phase is flagged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (CodeShim, CompileWatch, boundary_stats, counter_delta, now, raw_sampling, timed_steps, versions,
                    vllm_counters, write)

from aimokit.config import KernelConfig
from aimokit.problems import sample_problems
from aimokit.engine import create_engine
from aimokit.problems import load_problems
from aimokit.solver import Solver

AIME = sample_problems()


def parse_shape(text: str) -> tuple[int, int, int, int]:
    samples, rounds, round_tokens, problems = (int(x) for x in text.lower().split("x"))
    return samples, rounds, round_tokens, problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora", default="")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--protocol", default="fenced", choices=["fenced", "harmony"])
    ap.add_argument("--sessions", action="store_true", help="persistent Python sessions instead of a process per block")
    ap.add_argument("--problems-file", default=str(AIME))
    ap.add_argument("--shapes", default="16x3x512x4", help="SAMPLESxROUNDSxROUND_TOKENSxPROBLEMS, comma-separated")
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--kv-cache-dtype", default="auto")
    ap.add_argument("--dtype", default="bfloat16", help="float32 on a CPU without native bf16")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.90, help="about 0.2 on a CPU (its RAM)")
    ap.add_argument("--top-logprobs", type=int, default=0)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--max-num-batched-tokens", type=int, default=0, help="engine.vllm.max_num_batched_tokens "
                    "(0: vLLM's own); configs/aimo3-gpt-oss-120b.toml sets the recipe's")
    ap.add_argument("--warm-up", default="auto", help="engine.vllm.warm_up")
    ap.add_argument("--stats", action="store_true",
                    help="vLLM's counters per phase (prefill computed vs cached, preemptions) and the solver's step times")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()

    shapes = [parse_shape(x) for x in a.shapes.split(",")]
    widest = max(s[0] for s in shapes)
    base = KernelConfig.from_dict({
        "competition": {"name": "aimo3", "answer_max": 99999, "modulo": 0},
        "engine": {"backend": a.backend, "model": a.model, "dtype": a.dtype, "lora": a.lora, "max_model_len": a.max_model_len,
                   "max_num_seqs": 256,
                   "vllm": {"gpu_memory_utilization": a.gpu_memory_utilization, "enforce_eager": a.enforce_eager,
                            "kv_cache_dtype": a.kv_cache_dtype, "warm_up": a.warm_up,
                            "max_num_batched_tokens": a.max_num_batched_tokens,
                            "extra": {"disable_log_stats": not a.stats,
                                      **({"jit_monitor_verbose": True} if a.backend == "vllm" else {})}}},
        "sandbox": {"sessions": a.sessions, "workers": widest},
        "solver": {"protocol": a.protocol, "top_logprobs": a.top_logprobs, "early_stop": [], "early_stop_agree": 0},
    })
    all_problems = load_problems(a.problems_file)
    a.watch = CompileWatch(Path(a.out) / "engine.log") if a.backend == "vllm" else None
    t = now()
    inner = create_engine(base.engine)
    start_s = now() - t
    engine = CodeShim(inner, a.protocol)
    tag = f"solver_throughput_{a.backend}_{a.protocol}{'_lora' if a.lora else ''}{'_sessions' if a.sessions else ''}"
    report = {"backend": a.backend, "protocol": a.protocol, "lora": bool(a.lora), "sessions": a.sessions,
              "model": Path(a.model).name, "engine_start_s": round(start_s, 1),
              "warm_up": getattr(inner, "warm_up", None), "shapes": [], **versions()}
    for samples, rounds, round_tokens, n_problems in shapes:
        cfg = base.override({"solver.samples": samples, "solver.max_rounds": rounds - 1,
                             "solver.max_tokens_per_round": round_tokens,
                             "solver.max_tokens_total": rounds * round_tokens})
        report["shapes"].append(measure(cfg, engine, inner, all_problems[:n_problems], samples, a,
                                        warm_up=not report["shapes"]))
        write(Path(a.out), tag, report)  # after every shape: a timeout keeps what was measured
    inner.close()


def measure(cfg: KernelConfig, engine: CodeShim, inner, problems, samples: int, a, warm_up: bool) -> dict:
    """One shape: the solver, problem by problem, then raw vLLM on the same prompts and token counts."""
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=cfg.engine.max_model_len)
    per_sample: list[list[int]] = []
    prompts: list[str] = []
    results = []
    # The engine's first steps pay for JIT and graph capture: one problem first, on the first shape only.
    warm = solver.solve(problems[:1], samples=samples) if warm_up else []
    if solver.sessions is not None:  # spares started ahead, as a kernel starts them while its model loads
        solver.sessions.spare_target = 2 * samples
        solver.sessions.warm(threads=16)
    rounds_before = engine.rounds
    engine.events.clear()
    llm = getattr(inner, "llm", None)
    counters = vllm_counters(llm) if a.stats and llm is not None else {}
    t = now()
    t_solver = t
    with timed_steps(inner) as steps:  # the solver's engine steps, to set against raw generation's
        for p in problems:  # one problem at a time, as the kernel is fed
            r = solver.solve([p], samples=samples, keep_responses=True)[0]
            results.append(r)
            prompts.append(r.responses[0]["prompt"])
            per_sample.append([x["tokens"] for x in r.responses])
    solver_s = now() - t
    solver.close()
    solver_tokens = sum(r.tokens for r in results)
    out = {
        "samples": samples, "problems": len(problems), "rounds_per_sample": cfg.solver.max_rounds + 1,
        "round_tokens": cfg.solver.max_tokens_per_round,
        "solver_tokens": solver_tokens, "solver_s": round(solver_s, 2),
        "solver_tok_s": round(solver_tokens / solver_s, 1), "engine_rounds": engine.rounds - rounds_before,
        "code_runs": sum(r.code_runs for r in results), "code_errors": sum(r.code_errors for r in results),
        "answered": sum(r.answered for r in results), "warmup_tokens": warm[0].tokens if warm else 0,
        "solver_steps": len(steps), "solver_step_s": round(sum(s for s, _ in steps), 2), **boundary_stats(engine.events),
    }
    if a.watch is not None:
        out["solver_compiles"] = a.watch.between(t_solver, t_solver + solver_s)
    if counters:
        after = vllm_counters(llm)
        out["solver_vllm"], counters = counter_delta(counters, after), after
    if a.backend == "vllm":
        llm = inner.llm
        t = now()
        raw_tokens = 0
        for prompt, counts in zip(prompts, per_sample):  # same prompts, same concurrency, same token counts
            ids = inner.tokenizer.encode(prompt, add_special_tokens=False)
            params = [raw_sampling(cfg.solver.top_logprobs or None, temperature=cfg.solver.temperature,
                                   top_p=cfg.solver.top_p, max_tokens=max(1, n), ignore_eos=True,
                                   seed=i if inner.request_seeds else None)
                      for i, n in enumerate(counts)]
            outs = llm.generate([{"prompt_token_ids": ids}] * len(counts), params, lora_request=inner.lora,
                                use_tqdm=False)
            raw_tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        raw_s = now() - t
        out["raw_compiles"] = a.watch.between(t, t + raw_s)
        if counters:
            out["raw_vllm"] = counter_delta(counters, vllm_counters(llm))
        out.update(raw_tokens=raw_tokens, raw_s=round(raw_s, 2), raw_tok_s=round(raw_tokens / raw_s, 1),
                   solver_over_raw=round((solver_tokens / solver_s) / (raw_tokens / raw_s), 3))
    print(f"-- {samples} samples x {out['rounds_per_sample']} rounds: " + str(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
