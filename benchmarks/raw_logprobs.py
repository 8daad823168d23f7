"""What the top logprobs cost raw vLLM's front end: dicts of Logprob objects, flat lists, flat values without
each token's text, and none asked.

    python benchmarks/raw_logprobs.py --model DIR [--concurrency 64] [--requests 128] [--tokens 512] [--logprobs 5]

One engine, `eval_throughput.raw_streamed` (raw vLLM refilled at a width, every request `ignore_eos` for
--tokens) run with the top logprobs asked as dicts (vLLM's default, one dict of Logprob objects per token), flat
(`flat_logprobs`), flat without the text of each top-k token (`values`: as the kit's vLLM backend asks them,
`vllm_internals.logprob_values_only`) and not at all (`none`: what the entropy vote's logprobs cost), the forms in
one order and then the other (flat, dicts, values, none, none, values ...) so a drift over the run falls on all.
Each run reports its wall, tok/s, the garbage collector's seconds (`common.GcTimer`) and vLLM's step split
(`common.front_end_split`: the front end's output processing against waiting on the engine core). Why: the
evaluate baseline asked dicts until 2026-12-04 and paid 5-6 s of collection a pair on the H200 that the kit does
not, so its ratios were against a slowed raw; and the text of each top-k token was most of the front end's work
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from common import GcTimer, engine_args, front_end_split, now, versions, write
from eval_throughput import raw_streamed

from aimokit.config import KernelConfig
from aimokit.engine import create_engine
from aimokit.problems import load_problems, sample_problems

FORMS = {"flat", "dicts", "values", "none"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=512, help="output tokens per request (ignore_eos)")
    ap.add_argument("--logprobs", type=int, default=5, help="top logprobs per token (the recipe's solver.top_logprobs)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of every form, the order reversed each round")
    ap.add_argument("--forms", default="flat,dicts,values,none", help=f"of {', '.join(sorted(FORMS))}")
    ap.add_argument("--max-num-seqs", type=int, default=0, help="the engine's; 0: --concurrency")
    ap.add_argument("--load-format", default="", help="vLLM's load_format: dummy for a config without weights "
                    "(common.make_gpt_oss_full)")
    engine_args(ap, max_model_len=4096)
    a = ap.parse_args()
    if a.logprobs < 1:
        ap.error("--logprobs must be >= 1: the runs without logprobs are the form `none`")
    forms = tuple(a.forms.split(","))
    if set(forms) - FORMS:  # before the engine starts, not minutes after
        ap.error(f"--forms: {', '.join(sorted(set(forms) - FORMS))} unknown; choose from {', '.join(sorted(FORMS))}")

    cfg = KernelConfig.from_dict({"engine": {
        "model": a.model, "dtype": a.dtype, "max_model_len": a.max_model_len,
        "max_num_seqs": a.max_num_seqs or a.concurrency,
        "vllm": {"gpu_memory_utilization": a.gpu_memory_utilization, "enforce_eager": a.enforce_eager,
                 "kv_cache_dtype": a.kv_cache_dtype, "warm_up": "off",
                 "extra": {"load_format": a.load_format} if a.load_format else {}}}})
    t = now()
    inner = create_engine(cfg.engine)
    base = load_problems(sample_problems())
    prompts = [base[i % len(base)].problem for i in range(a.requests)]
    counts = [[a.tokens] for _ in prompts]
    report = {"model": Path(a.model).name, "engine_start_s": round(now() - t, 1), "concurrency": a.concurrency,
              "requests": a.requests, "tokens": a.tokens, "logprobs": a.logprobs, "runs": [], **versions()}
    gc_timer = GcTimer()
    raw_streamed(inner, prompts[: a.concurrency], counts[: a.concurrency], a.concurrency, 1.0, 1.0,
                 logprobs=a.logprobs)  # untimed: the shapes the runs meet, compiled once
    order = [form for i in range(a.rounds) for form in (forms if i % 2 == 0 else forms[::-1])]
    for form in order:
        snap = gc_timer.snapshot()
        with front_end_split(inner.engine) as split:
            tokens, wall = raw_streamed(inner, prompts, counts, a.concurrency, 1.0, 1.0,
                                        logprobs=None if form == "none" else a.logprobs,
                                        flat_logprobs=form != "dicts", values_only=form == "values")
        run = {"form": form, "tokens": tokens, "wall_s": round(wall, 2), "tok_s": round(tokens / wall, 1),
               **gc_timer.since(snap), **split}
        print(f"-- {run}", flush=True)
        report["runs"].append(run)
        write(Path(a.out), "raw_logprobs", report)
    for form in forms:
        runs = [r for r in report["runs"] if r["form"] == form]
        report[form] = {k: round(statistics.mean(r[k] for r in runs), 3)
                        for k in ("tok_s", "gc_s", "output_processing_s", "wait_core_s")}
    for x, y in (("dicts", "flat"), ("values", "flat"), ("flat", "none"), ("values", "none")):
        if x in forms and y in forms:
            report[f"{x}_over_{y}"] = round(report[x]["tok_s"] / report[y]["tok_s"], 3)
    write(Path(a.out), "raw_logprobs", report)
    inner.close()


if __name__ == "__main__":
    sys.exit(main())
