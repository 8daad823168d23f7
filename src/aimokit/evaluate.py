"""Evaluate a model (and adapter) on a labelled problem set: every response kept, maj and pass reported.

The same Solver the kernel uses produces K samples per problem, with early
stopping off so every problem gets all K (pass@k and maj@k need them). Each
response is a parquet row, the input of `dpo_data`. The file is rewritten
atomically after every batch and a rerun skips the problems already there, so a
crash or a timeout loses at most one batch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .answers import is_correct
from .config import SolveConfig
from .problems import Problem, ProblemFileError
from .report import atomic_write

log = logging.getLogger(__name__)

RESPONSES = "responses.parquet"
RESPONSE_SCHEMA = {
    "problem_id": pl.String, "sample": pl.Int64, "prompt": pl.String, "response": pl.String,
    "answer": pl.Int64, "gold": pl.Int64, "correct": pl.Boolean, "boxed": pl.Boolean, "tokens": pl.Int64,
    "code_runs": pl.Int64, "code_errors": pl.Int64, "aborted": pl.Boolean, "seconds": pl.Float64,
}


@dataclass
class EvalConfig:
    samples: int = 8  # K responses per problem
    batch_problems: int = 8  # problems solved together (more keeps the engine's batch full)
    z: float = 1.96  # confidence level of the intervals (95%)
    curve_draws: int = 200  # random subsets per k for the maj@k curve
    seed: int = 0


def run_evaluation(cfg: SolveConfig, problems: list[Problem], out: Path, ev: EvalConfig,
                   engine: Any = None) -> pl.DataFrame:
    """Solve every problem K times and store each response; resumes from an existing file."""
    from .engine import create_engine
    from .solver import Solver, SolveError

    missing = [p.id for p in problems if p.answer is None]
    if missing:
        raise ProblemFileError(f"evaluation needs answers; problems {missing[:5]} have none "
                               "(add an 'answer' column)")
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESPONSES
    done = pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=RESPONSE_SCHEMA)
    seen = set(done["problem_id"].to_list())
    todo = [p for p in problems if p.id not in seen]
    if seen:
        log.info("resuming: %d problems already evaluated, %d to go", len(seen), len(todo))
    # all K samples for every problem: pass@k and maj@k need them
    cfg = dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, early_stop=[], early_stop_agree=0))
    t0 = time.monotonic()
    engine = engine or create_engine(cfg.engine)
    start_s = time.monotonic() - t0
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=cfg.engine.max_model_len)
    frames = [done]
    try:
        for i in range(0, len(todo), ev.batch_problems):
            batch = todo[i:i + ev.batch_problems]
            try:
                results = solver.solve(batch, samples=ev.samples, keep_responses=True)
            except SolveError as e:  # keep what the batch produced, then stop: the engine is gone
                results = e.results
                _append(frames, results, path)
                raise
            _append(frames, results, path)
            n = sum(f.height for f in frames)
            log.info("evaluated %d/%d problems (%d responses)", len(seen) + i + len(batch), len(problems), n)
    finally:
        solver.close()
    df = pl.concat(frames)
    meta = {"model": cfg.engine.model, "lora": cfg.engine.lora, "samples": ev.samples,
            "engine_start_s": round(start_s, 2), "wall_s": round(time.monotonic() - t0, 2)}
    atomic_write(out / "eval_meta.json", json.dumps(meta, indent=2))
    return df


def _append(frames: list[pl.DataFrame], results: list, path: Path) -> None:
    rows = []
    for r in results:
        per = r.seconds / max(1, len(r.responses))  # the batch's wall time, shared by its samples
        for x in r.responses:
            correct = bool(is_correct(x["answer"], r.gold))  # the kernel's own equivalence (math-verify)
            rows.append({"problem_id": r.id, "sample": x["sample"], "prompt": x["prompt"],
                         "response": x["response"], "answer": x["answer"], "gold": r.gold, "correct": correct,
                         "boxed": x["boxed"], "tokens": x["tokens"], "code_runs": x["code_runs"],
                         "code_errors": x["code_errors"], "aborted": x["aborted"], "seconds": per})
    if rows:
        frames.append(pl.DataFrame(rows, schema=RESPONSE_SCHEMA))
        atomic_write(path, pl.concat(frames))


# -- metrics ------------------------------------------------------------------

def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval: honest at 0 %, 100 % and the small n of a 30-problem set."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def majority(answers: list[int | None], rng: random.Random | None = None) -> int | None:
    """The most frequent extracted answer; ties broken at random (or by value without rng)."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    tied = sorted(a for a, c in counts.items() if c == top)
    return rng.choice(tied) if rng else tied[0]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def metrics(df: pl.DataFrame, ev: EvalConfig) -> dict[str, Any]:
    per = (df.group_by("problem_id", maintain_order=True)
             .agg(pl.col("answer"), pl.col("gold").first(), pl.col("correct").sum().alias("c"),
                  pl.len().alias("n"), pl.col("tokens").sum(), pl.col("seconds").sum()))
    rows = per.to_dicts()
    n_problems = len(rows)
    maj_ok = sum(1 for r in rows if majority(r["answer"]) == r["gold"])
    pass_ok = sum(1 for r in rows if r["c"] > 0)
    k_max = min((r["n"] for r in rows), default=0)
    rng = random.Random(ev.seed)
    curve = []
    for k in range(1, k_max + 1):
        p_at_k = sum(pass_at_k(r["n"], r["c"], k) for r in rows) / max(1, n_problems)
        maj_k = 0.0
        for r in rows:
            hits = sum(majority(rng.sample(r["answer"], k), rng) == r["gold"] for _ in range(ev.curve_draws))
            maj_k += hits / ev.curve_draws
        curve.append({"k": k, "maj": maj_k / max(1, n_problems), "pass": p_at_k})
    tokens = int(df["tokens"].sum()) if df.height else 0
    seconds = float(df["seconds"].sum()) if df.height else 0.0
    return {
        "problems": n_problems, "responses": df.height, "samples_per_problem": k_max,
        "maj": maj_ok / max(1, n_problems), "maj_ci": wilson(maj_ok, n_problems, ev.z),
        "pass": pass_ok / max(1, n_problems), "pass_ci": wilson(pass_ok, n_problems, ev.z),
        "response_accuracy": float(df["correct"].mean()) if df.height else 0.0,
        "answered": float(df["answer"].is_not_null().mean()) if df.height else 0.0,
        "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "curve": curve,
        "per_problem": [{"problem_id": r["problem_id"], "gold": r["gold"], "maj": majority(r["answer"]),
                         "correct": r["c"], "n": r["n"], "tokens": r["tokens"], "seconds": round(r["seconds"], 2)}
                        for r in rows],
    }


# -- report -------------------------------------------------------------------

def plot(m: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [c["k"] for c in m["curve"]]
    ax.plot(ks, [100 * c["maj"] for c in m["curve"]], marker="o", label="maj@k")
    ax.plot(ks, [100 * c["pass"] for c in m["curve"]], marker="s", label="pass@k")
    ax.set_xlabel("samples per problem (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy against samples ({m['problems']} problems)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_samples.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_vs_samples.png")

    per = m["per_problem"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6, 0.25 * len(per)), 5), sharex=True)
    xs = range(len(per))
    a1.bar(xs, [p["seconds"] for p in per], color="tab:blue")
    a1.set_ylabel("seconds")
    a2.bar(xs, [p["tokens"] for p in per], color="tab:orange")
    a2.set_ylabel("tokens")
    a2.set_xticks(list(xs), [str(p["problem_id"]) for p in per], rotation=90, fontsize=7)
    a1.set_title("time and tokens per problem (all samples)")
    fig.tight_layout()
    fig.savefig(out / "time_tokens_per_problem.png", dpi=110)
    plt.close(fig)
    files.append("time_tokens_per_problem.png")
    return files


def render(m: dict[str, Any], meta: dict[str, Any], images: list[str]) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    lines = [
        "# Evaluation report", "",
        f"Model `{meta.get('model') or 'embedded default'}`" + (f" with adapter `{meta['lora']}`" if meta.get("lora") else ""),
        "",
        "| problems | samples | maj | maj 95% CI | pass | pass 95% CI | responses correct | answered | tokens | tok/s | runtime |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {m['problems']} | {m['samples_per_problem']} | {pct(m['maj'])} | {pct(m['maj_ci'][0])}–{pct(m['maj_ci'][1])} "
        f"| {pct(m['pass'])} | {pct(m['pass_ci'][0])}–{pct(m['pass_ci'][1])} | {pct(m['response_accuracy'])} "
        f"| {pct(m['answered'])} | {m['tokens']} | {m['tokens_per_s']} | {meta.get('wall_s', m['seconds'])} s |",
        "",
        "maj: the most frequent extracted answer is right; pass: at least one sample is right. Intervals are Wilson "
        "score intervals over problems. Runtime includes engine start-up "
        f"({meta.get('engine_start_s', '?')} s).", "",
        "| k | maj@k | pass@k |", "|---|---|---|",
    ]
    lines += [f"| {c['k']} | {pct(c['maj'])} | {pct(c['pass'])} |" for c in m["curve"]]
    lines.append("")
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def write_report(out: Path, ev: EvalConfig) -> dict[str, Any]:
    path = out / RESPONSES
    if not path.exists():
        raise FileNotFoundError(f"{path}: no responses yet; run `build.py evaluate` first")
    df = pl.read_parquet(path)
    m = metrics(df, ev)
    meta_path = out / "eval_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    images = plot(m, out)
    atomic_write(out / "metrics.json", json.dumps(m, indent=2))
    atomic_write(out / "report.md", render(m, meta, images))
    return m
