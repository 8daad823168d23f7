"""`evaluate`'s engine loop against raw vLLM at a fixed concurrency, side by side on one engine.

    python benchmarks/eval_throughput.py --model DIR --lora DIR --concurrency 128,256 \
        --problems 24 --samples 16 --rounds 3 --round-tokens 512 --out DIR

For each concurrency C, on the one engine:
- streamed: `Solver.solve_stream` as `build.py evaluate` runs it (early stop off, every sample to the end), problems
  entering as soon as C leaves room for their samples;
- batched: the way evaluate ran before, C / samples problems per `Solver.solve`, each batch waiting on its slowest
  problem before the next starts;
- raw: vLLM's own engine fed the same first prompts with the same per-sample token counts (ignore_eos, same LoRA),
  keeping C requests in flight: the most the GPU can give at that concurrency.
CodeShim writes the tool call a random model cannot (see common.py); with --vary each sample answers after 1 to
`rounds` rounds (a fixed draw per sample), so problems end at different times as real ones do, and a batch waits on
its slowest problem.
The ratio streamed / raw is what evaluate keeps of the engine. The projected time of the journal's evaluation
(509 problems x 64 samples) uses the streamed tok/s at the widest concurrency and the measured tokens per sample.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import CodeShim, engine_args, now, raw_sampling, step_summary, timed_steps, versions, write

from aimokit.config import KernelConfig
from aimokit.engine import create_engine
from aimokit.problems import Problem, load_problems, sample_problems
from aimokit.solver import Solver


def raw_streamed(inner, prompts: list[str], counts: list[list[int]], concurrency: int, temperature: float,
                 top_p: float, min_p: float = 0.0, logprobs: int | None = None,
                 records: list[tuple[float, int]] | None = None, flat_logprobs: bool = True,
                 values_only: bool = True) -> tuple[int, float]:
    """Raw vLLM with at most `concurrency` requests in flight, refilled as they finish (public engine calls),
    sampling as the solver does (its min_p and top logprobs too, where it asks for them, flat as the kit asks
    them unless `flat_logprobs` is off: `common.raw_sampling`; and without the text of each top-k token, as the
    kit's backend asks them by default (`engine.vllm.logprob_text`), unless `values_only` is off: the same work
    in vLLM's front end on both sides). `records` gets (seconds, live) per engine step, as `common.timed_steps`
    records the solver's."""
    from aimokit.engine import vllm_internals
    from vllm.sampling_params import RequestOutputKind

    engine = inner.llm.llm_engine
    todo = [(inner.encode(p), n, i) for p, ns in zip(prompts, counts) for i, n in enumerate(ns)]
    todo.reverse()
    live, tokens, seq = 0, 0, 0
    t = now()
    while todo or live:
        while todo and live < concurrency:
            ids, n, i = todo.pop()
            seq += 1
            engine.add_request(f"raw{seq}", {"prompt_token_ids": ids},
                               raw_sampling(logprobs, flat_logprobs, temperature=temperature, top_p=top_p,
                                            min_p=min_p, max_tokens=max(1, n), ignore_eos=True,
                                            seed=i if inner.request_seeds else None,
                                            output_kind=RequestOutputKind.FINAL_ONLY),
                               lora_request=inner.lora)
            if values_only and logprobs:
                vllm_internals.logprob_values_only(engine, f"raw{seq}")
            live += 1
        t0 = now()
        outs = engine.step()
        if records is not None:
            records.append((now() - t0, live))
        for out in outs:
            if out.finished:
                live -= 1
                tokens += len(out.outputs[0].token_ids)
    return tokens, now() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora", default="")
    ap.add_argument("--concurrency", default="128,256")
    ap.add_argument("--problems", type=int, default=24)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-tokens", type=int, default=512)
    ap.add_argument("--sessions", action="store_true")
    ap.add_argument("--vary", action="store_true", help="samples answer after 1..rounds rounds")
    ap.add_argument("--skip-batched", action="store_true")
    engine_args(ap, max_model_len=8192)
    a = ap.parse_args()

    widths = [int(x) for x in a.concurrency.split(",")]
    cfg = KernelConfig.from_dict({
        "engine": {"model": a.model, "lora": a.lora, "dtype": a.dtype, "max_model_len": a.max_model_len,
                   "max_num_seqs": max(widths),
                   "vllm": {"gpu_memory_utilization": a.gpu_memory_utilization, "enforce_eager": a.enforce_eager,
                            "kv_cache_dtype": a.kv_cache_dtype}},
        "sandbox": {"sessions": a.sessions, "workers": max(widths)},
        "solver": {"samples": a.samples, "early_stop": [], "early_stop_agree": 0, "max_rounds": a.rounds - 1,
                   "max_tokens_per_round": a.round_tokens, "max_tokens_total": a.rounds * a.round_tokens},
    })
    base = load_problems(sample_problems())
    problems = [Problem(f"{p.id}-{i}", p.problem, p.answer) for i in range(a.problems // len(base) + 1)
                for p in base][: a.problems]
    t = now()
    inner = create_engine(cfg.engine)
    report = {"model": Path(a.model).name, "lora": bool(a.lora), "engine_start_s": round(now() - t, 1), "vary": a.vary,
              "problems": a.problems, "samples": a.samples, "rounds": a.rounds, "round_tokens": a.round_tokens,
              "kv_cache_dtype": a.kv_cache_dtype, "runs": [], **versions()}
    engine = CodeShim(inner, vary_rounds=a.rounds if a.vary else 0)
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=a.max_model_len)
    # Untimed warm-up at the widest batch (Triton kernels compile for the shapes they first meet).
    warm = Solver(CodeShim(inner), cfg.override({"solver.max_rounds": 1, "solver.max_tokens_per_round": 64}).solver,
                  cfg.sandbox, cfg.competition, max_model_len=a.max_model_len)
    warm.solve(problems[: max(1, max(widths) // a.samples)])
    warm.close()
    for width in widths:
        if solver.sessions is not None:
            solver.sessions.spare_target = 2 * width
            solver.sessions.warm(threads=16)
        got = []
        t = now()
        with timed_steps(inner, live=inner.engine.get_num_unfinished_requests) as records:
            solver.solve_stream(problems, got.append, concurrency=width, keep_responses=True)
        streamed_s = now() - t
        tokens = sum(r.tokens for r in got)
        run = {"concurrency": width, "streamed_tokens": tokens, "streamed_s": round(streamed_s, 2),
               "streamed_tok_s": round(tokens / streamed_s, 1), "streamed_steps": step_summary(records, streamed_s)}
        if not a.skip_batched:
            per = max(1, width // a.samples)
            t = now()
            batched = [r for i in range(0, len(problems), per) for r in solver.solve(problems[i:i + per])]
            batched_s = now() - t
            run.update(batched_tokens=sum(r.tokens for r in batched), batched_s=round(batched_s, 2),
                       batched_tok_s=round(sum(r.tokens for r in batched) / batched_s, 1))
        got.sort(key=lambda r: r.id)
        records = []
        raw_tokens, raw_s = raw_streamed(inner, [r.responses[0]["prompt"] for r in got],
                                         [[x["tokens"] for x in r.responses] for r in got], width,
                                         cfg.solver.temperature, cfg.solver.top_p, cfg.solver.min_p,
                                         cfg.solver.top_logprobs or None, records=records)
        run.update(raw_tokens=raw_tokens, raw_s=round(raw_s, 2), raw_tok_s=round(raw_tokens / raw_s, 1),
                   raw_steps=step_summary(records, raw_s),
                   streamed_over_raw=round((tokens / streamed_s) / (raw_tokens / raw_s), 3))
        if "batched_tok_s" in run:
            run["batched_over_raw"] = round(run["batched_tok_s"] / run["raw_tok_s"], 3)
        per_sample = tokens / (len(got) * a.samples)
        run["projected_509x64_min"] = round(509 * 64 * per_sample / run["streamed_tok_s"] / 60, 1)
        run["tokens_per_sample"] = round(per_sample, 1)
        print(f"-- concurrency {width}: {run}", flush=True)
        report["runs"].append(run)
        write(Path(a.out), "eval_throughput", report)
    solver.close()
    inner.close()


if __name__ == "__main__":
    sys.exit(main())
