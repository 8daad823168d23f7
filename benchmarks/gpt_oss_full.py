"""The winning recipe at full size on one GPU: configs/aimo3-gpt-oss-120b.toml's kernel, through the local gateway,
on a gpt-oss-120b-shaped model with random weights, against raw vLLM on the same engine.

    python benchmarks/gpt_oss_full.py --model DIR --phases kernel,raw --problems 3 --rounds 3 --round-tokens 2048 --out DIR
    python benchmarks/gpt_oss_full.py --model DIR --phases genselect,evaluate --out DIR   # a second call: a warm cache
    python benchmarks/gpt_oss_full.py ... --compile-cache-save C1          # a cold start that keeps its cache
    python benchmarks/gpt_oss_full.py ... --compile-cache SHIPPED          # a start from that cache, as Kaggle mounts it

DIR holds gpt-oss-120b's configuration and tokenizer, no weights (common.make_gpt_oss_full); vLLM makes random
ones on the GPU (`load_format = "dummy"`). The engine is the recipe's (MXFP4 experts, FP8 KV unless
--kv-cache-dtype, 65k context, prefix caching, the kit's shape sweep at start), started once; the phases share it:

- kernel: `Kernel` behind `run_local_gateway`, problems served one at a time as on Kaggle, the recipe's solver
  (8 attempts, harmony, persistent python sessions, entropy vote) with CodeShim writing the harmony tool calls a
  random model cannot; each sample answers after 1..--rounds rounds of --round-tokens.
- raw: `LLM.generate` on each problem's first prompt, as many tokens per sample as the kernel's samples wrote
  (ignore_eos, the same sampling and top logprobs), 8 in flight: what a hand-written notebook gets.
- genselect: the kernel again with `solver.genselect` on over the first --genselect-problems problems (every vote
  is split: the shim's answers differ), seconds per problem against the kernel phase's.
- evaluate: `Solver.solve_stream` at 64 and 256 in flight against raw vLLM refilled at the same width, sampling as
  the solver does (min_p and the top logprobs the entropy vote reads; until 2026-12-03 raw asked for neither).
  Each of --eval-variants runs both sides: `tools` (samples answer after 1..3 rounds, a tool call between),
  `tools-room` (the same, with up to a quarter of the width more samples started while others wait on their
  code: `solve_stream`'s tool_room, so the batch does not thin at tool turns; raw stays at the width),
  `no-tools` (every sample answers after its first round: no tool turn, so what is left of the gap is not the
  batch thinning at tool turns) and `no-tools-whole` (the same with `solver.stop_at_answer` off: outputs come
  whole, as raw's do, not streamed every --stream-interval tokens). --eval-intervals runs each width's pair at
  each of several stream intervals on the one engine. The streamed side also reports its tool turns
  (`boundary_stats`).

Every phase reports the kernel compiles seen inside it (vLLM's JIT monitor, verbose, read off the engine's
stdout and stderr: CompileWatch), the garbage collector's seconds, and is written as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from common import (CodeShim, CompileWatch, GcTimer, boundary_stats, front_end_split, now, raw_sampling, step_summary,
                    timed_steps, versions, write)
from eval_throughput import raw_streamed

from aimokit.config import KernelConfig
from aimokit.engine import create_engine
from aimokit.problems import Problem, load_problems, sample_problems

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "aimo3-gpt-oss-120b.toml"
# evaluate's variants: a sample answers after 1..N rounds (CodeShim), the solver settings they change, and
# solve_stream's tool_room as a share of the width (samples started in place of those waiting on their code)
EVAL_VARIANTS = {"tools": (3, {}, 0.0), "tools-room": (3, {}, 0.25), "no-tools": (1, {}, 0.0),
                 "no-tools-whole": (1, {"solver.stop_at_answer": False}, 0.0)}  # whole outputs: no streamed deltas


class SharedShim(CodeShim):
    """CodeShim over an engine the phases share: the kernel's close leaves it running and its processes alive.
    CodeShim's `runs` (one per problem: the kernel solves them one at a time) give raw its prompts and counts."""

    def __init__(self, engine, vary_rounds: int):
        super().__init__(engine, "harmony", vary_rounds)

    def close(self):
        pass

    def processes(self):
        return set()  # nothing for the kernel's close to kill: the engine outlives each kernel


def phase_start(gc_timer: GcTimer) -> dict:
    return {"t": now(), "gc": gc_timer.snapshot()}


def phase_end(p: dict, watch: CompileWatch, gc_timer: GcTimer) -> dict:
    t1 = now()
    compiles = watch.between(p["t"], t1)
    return {"wall_s": round(t1 - p["t"], 2), "compiles": len(compiles), "compiled": sorted(set(compiles))[:12],
            **gc_timer.since(p["gc"])}


def run_kernel(cfg: KernelConfig, shim: SharedShim, problems: list[Problem], out: Path, inner) -> dict:
    from aimokit.gateway import run_local_gateway
    from aimokit.kernel import Kernel
    from aimokit.serving import make_predict

    kernel = Kernel(cfg, total_problems=len(problems), engine_factory=lambda c: shim)
    first = len(shim.runs)
    t = now()
    try:
        with timed_steps(inner) as steps:
            run_local_gateway(make_predict(kernel), problems, out, cfg.competition, shuffle_seed=0)
    finally:
        wall = now() - t
        kernel.close()
    summary = json.loads((out / "kernel_summary.json").read_text())
    runs = shim.runs[first:]
    tokens = sum(sum(r["tokens"].values()) for r in runs)
    return {"problems": len(kernel.results), "answered": sum(1 for r in kernel.results if r.answered),
            "tokens": tokens, "selection_tokens": sum(r["selection_tokens"] for r in runs),
            "wall_s": round(wall, 2), "tok_s": round(tokens / wall, 1),
            "s_per_problem": [round(r.seconds, 2) for r in kernel.results],
            "genselect": sorted({r.genselect for r in kernel.results}),
            "engine_step_s": round(sum(s for s, _ in steps), 2), "engine_steps": len(steps),
            "outside_steps_s": round(wall - sum(s for s, _ in steps), 2), "events": summary.get("events", []), "_runs": runs}


def run_raw(inner, runs: list[dict], cfg: KernelConfig) -> dict:
    s = cfg.solver
    t = now()
    tokens = 0
    for rec in runs:  # one problem at a time, its samples in flight together, as the kernel ran them
        keys = sorted(rec["tokens"], key=repr)
        prompts = [inner.encode(rec["prompts"][k]) for k in keys]
        params = [raw_sampling(s.top_logprobs or None, temperature=s.temperature, top_p=s.top_p, min_p=s.min_p,
                               seed=i if inner.request_seeds else None,  # vLLM-CPU: unseeded, as the kit's
                               max_tokens=max(1, rec["tokens"][k]), ignore_eos=True)
                  for i, k in enumerate(keys)]
        outs = inner.llm.generate([{"prompt_token_ids": p} for p in prompts], params, lora_request=inner.lora,
                                  use_tqdm=False)
        tokens += sum(len(o.outputs[0].token_ids) for o in outs)
    wall = now() - t
    return {"tokens": tokens, "wall_s": round(wall, 2), "tok_s": round(tokens / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="gpt-oss-120b's config and tokenizer (common.make_gpt_oss_full)")
    ap.add_argument("--phases", default="kernel,raw")
    ap.add_argument("--problems", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="a sample answers after 1..ROUNDS rounds")
    ap.add_argument("--round-tokens", type=int, default=2048)
    ap.add_argument("--genselect-problems", type=int, default=2)
    ap.add_argument("--genselect-tokens", type=int, default=1024)
    ap.add_argument("--widths", default="64,256", help="evaluate's concurrencies")
    ap.add_argument("--eval-problems", type=int, default=32)
    ap.add_argument("--eval-round-tokens", type=int, default=512)
    ap.add_argument("--eval-variants", default="tools", help=f"evaluate's variants, of {sorted(EVAL_VARIANTS)}")
    ap.add_argument("--eval-workers", type=int, default=64,
                    help="evaluate's sandbox.workers (a fresh process per block); at 256 in flight 64 queued")
    ap.add_argument("--kv-cache-dtype", default="", help="the recipe's (fp8) unless given")
    ap.add_argument("--max-model-len", type=int, default=0, help="the recipe's (65536) unless given")
    ap.add_argument("--warm-up", default="auto", help="engine.vllm.warm_up")
    ap.add_argument("--stream-interval", type=int, default=0, help="engine.vllm.stream_interval; 0: the recipe's")
    ap.add_argument("--eval-intervals", default="", help="evaluate's stream intervals, each pair on the one engine "
                    "(vLLM's output processor reads it per request added); empty: --stream-interval's")
    ap.add_argument("--dtype", default="", help="the recipe's (auto) unless given: float32 for a CPU smoke run")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.0, help="the recipe's (0.95) unless given")
    ap.add_argument("--max-num-seqs", type=int, default=0, help="the recipe's (256) unless given")
    ap.add_argument("--compile-cache", default="", help="engine.vllm.compile_cache: a cache an earlier run saved")
    ap.add_argument("--compile-cache-save", default="", help="engine.vllm.compile_cache_save: keep this start's cache")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    unknown = sorted(set(a.eval_variants.split(",")) - set(EVAL_VARIANTS))
    if unknown:
        ap.error(f"--eval-variants: {', '.join(unknown)} unknown; choose from {', '.join(sorted(EVAL_VARIANTS))}")
    out = Path(a.out)
    watch = CompileWatch(out / "engine.log")
    gc_timer = GcTimer()
    phases = a.phases.split(",")

    recipe = KernelConfig.load(RECIPE)
    sets = {"engine.model": a.model, "engine.vllm.warm_up": a.warm_up,
            "engine.vllm.extra": {"load_format": "dummy", "jit_monitor_verbose": True},
            "solver.max_rounds": a.rounds - 1, "solver.max_tokens_per_round": a.round_tokens,
            "solver.max_tokens_total": a.rounds * a.round_tokens, "solver.early_stop_agree": 0,
            "run.output_dir": str(out / "kernel")}
    # the recipe keeps its cache under /kaggle/working; here only where asked
    sets.update({"engine.vllm.compile_cache": a.compile_cache, "engine.vllm.compile_cache_save": a.compile_cache_save})
    if a.kv_cache_dtype:
        sets["engine.vllm.kv_cache_dtype"] = a.kv_cache_dtype
    for flag, key in (("max_model_len", "engine.max_model_len"), ("dtype", "engine.dtype"),
                      ("max_num_seqs", "engine.max_num_seqs"), ("stream_interval", "engine.vllm.stream_interval"),
                      ("gpu_memory_utilization", "engine.vllm.gpu_memory_utilization")):
        if getattr(a, flag):
            sets[key] = getattr(a, flag)
    cfg = recipe.override(sets)
    cache = Path(os.environ.get("VLLM_CACHE_ROOT", Path.home() / ".cache" / "vllm")) / "torch_compile_cache"
    if a.compile_cache or a.compile_cache_save:  # the kit's own cache folder, seeded or not: its report says
        cache = Path(a.compile_cache or a.compile_cache_save) / "vllm" / "torch_compile_cache"
    report = {"model": "gpt-oss-120b shape (random weights, MXFP4 experts)", "phases": phases,
              "kv_cache_dtype": cfg.engine.section("vllm").kv_cache_dtype, "max_model_len": cfg.engine.max_model_len,
              "compile_cache_before": "present" if cache.is_dir() and any(cache.iterdir()) else "empty",
              "stream_interval": cfg.engine.section("vllm").stream_interval,
              "samples": cfg.solver.samples, "rounds": a.rounds, "round_tokens": a.round_tokens, **versions()}
    p = phase_start(gc_timer)
    inner = create_engine(cfg.engine)
    report["engine_start"] = {**phase_end(p, watch, gc_timer), "warm_up": inner.warm_up,
                              "compile_cache": inner.compile_cache}
    sched = inner.engine.vllm_config.scheduler_config
    report["scheduler"] = {"async_scheduling": sched.async_scheduling,
                           "max_num_batched_tokens": sched.max_num_batched_tokens}
    vcfg = inner.engine.vllm_config.cache_config
    kv_tokens = int(vcfg.num_gpu_blocks or 0) * int(vcfg.block_size)
    report["kv_cache_tokens"] = kv_tokens
    report["samples_at_65k"] = kv_tokens // 65536
    write(out, "gpt_oss_full", report)

    base = load_problems(sample_problems())
    problems = [Problem(f"{p.id}-{i}", p.problem, p.answer) for i in range(8) for p in base]
    shim = SharedShim(inner, vary_rounds=a.rounds)
    kernel_runs: list[dict] = []
    if "kernel" in phases:
        p = phase_start(gc_timer)
        k = run_kernel(cfg, shim, problems[: a.problems], out / "kernel", inner)
        kernel_runs = k.pop("_runs")
        report["kernel"] = {**k, **phase_end(p, watch, gc_timer)}
        write(out, "gpt_oss_full", report)
    if "raw" in phases and kernel_runs:
        p = phase_start(gc_timer)
        report["raw"] = {**run_raw(inner, kernel_runs, cfg), **phase_end(p, watch, gc_timer)}
        report["kernel_over_raw"] = round(report["kernel"]["tok_s"] / report["raw"]["tok_s"], 3)
        write(out, "gpt_oss_full", report)
    if "genselect" in phases:
        on = cfg.override({"solver.genselect": True, "solver.genselect_share": 1.0, "solver.genselect_min_s": 0.0,
                           "solver.genselect_tokens": a.genselect_tokens, "run.output_dir": str(out / "genselect")})
        off = cfg.override({"run.output_dir": str(out / "genselect-off")})
        runs = {}
        for name, c in (("off", off), ("on", on)):
            p = phase_start(gc_timer)
            g = run_kernel(c, shim, problems[: a.genselect_problems], Path(c.run.output_dir), inner)
            g.pop("_runs")
            runs[name] = {**g, **phase_end(p, watch, gc_timer)}
            report["genselect"] = runs
            write(out, "gpt_oss_full", report)
        extra = statistics.mean(runs["on"]["s_per_problem"]) - statistics.mean(runs["off"]["s_per_problem"])
        report["genselect_extra_s_per_problem"] = round(extra, 2)
        report["genselect_extra_share"] = round(extra / statistics.mean(runs["off"]["s_per_problem"]), 3)
        write(out, "gpt_oss_full", report)
    if "evaluate" in phases:
        from aimokit.solver import Solver

        base_ev = cfg.override({"solver.max_rounds": 2, "solver.max_tokens_per_round": a.eval_round_tokens,
                                "solver.max_tokens_total": 3 * a.eval_round_tokens, "sandbox.sessions": False,
                                "sandbox.workers": a.eval_workers})
        report["evaluate"] = []
        own_interval = cfg.engine.section("vllm").stream_interval
        intervals = [int(i) for i in a.eval_intervals.split(",")] if a.eval_intervals else [own_interval]
        for variant in a.eval_variants.split(","):
            vary, changes, room = EVAL_VARIANTS[variant]
            ev = base_ev.override(changes)
            shim = CodeShim(inner, "harmony", vary_rounds=vary)
            solver = Solver(shim, ev.solver, ev.sandbox, ev.competition, max_model_len=ev.engine.max_model_len)
            for width, interval in ((int(w), int(i)) for w in a.widths.split(",") for i in intervals):
                # a front-end setting only: LLMEngine hands scheduler_config.stream_interval to its output
                # processor, which gives it to each request it adds (vLLM 0.26 and 0.32); raw reads it too
                inner.engine.output_processor.stream_interval = interval
                got: list = []
                tool_room = int(room * width)
                first = len(shim.events)
                p = phase_start(gc_timer)
                with (timed_steps(inner, live=inner.engine.get_num_unfinished_requests) as records,
                      front_end_split(inner.engine) as split):
                    solver.solve_stream(problems[: a.eval_problems], got.append, concurrency=width,
                                        tool_room=tool_room, keep_responses=True)
                streamed = phase_end(p, watch, gc_timer)
                streamed.update(step_summary(records, streamed["wall_s"]), **split)
                streamed.update(boundary_stats(shim.events[first:]))
                tokens = sum(r.tokens for r in got)
                got.sort(key=lambda r: r.id)
                p = phase_start(gc_timer)
                records = []
                with front_end_split(inner.engine) as split:
                    raw_tokens, raw_s = raw_streamed(inner, [r.responses[0]["prompt"] for r in got],
                                                     [[x["tokens"] for x in r.responses] for r in got], width,
                                                     ev.solver.temperature, ev.solver.top_p, ev.solver.min_p,
                                                     ev.solver.top_logprobs or None, records=records)
                raw = phase_end(p, watch, gc_timer)
                raw.update(step_summary(records, raw["wall_s"]), **split)
                report["evaluate"].append({"variant": variant, "concurrency": width, "tool_room": tool_room,
                                           "stream_interval": interval,
                                           "tokens": tokens,
                                           "tok_s": round(tokens / streamed["wall_s"], 1), "streamed": streamed,
                                           "raw_tokens": raw_tokens, "raw_tok_s": round(raw_tokens / raw_s, 1),
                                           "raw": raw,
                                           "over_raw": round((tokens / streamed["wall_s"]) / (raw_tokens / raw_s), 3)})
                write(out, "gpt_oss_full", report)
            solver.close()
        inner.engine.output_processor.stream_interval = own_interval
    inner.close()


if __name__ == "__main__":
    sys.exit(main())
