"""Figures of evaluated responses: maj and pass with intervals, the maj@k / pass@k curve, per problem.

Pure functions of the responses frame `evaluate` writes, so a report can be
rebuilt, or two runs compared, without a model.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import polars as pl


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


def metrics(df: pl.DataFrame, z: float = 1.96, curve_draws: int = 200, seed: int = 0) -> dict[str, Any]:
    """maj, pass (with Wilson intervals), the maj@k / pass@k curve and per-problem figures of evaluated responses."""
    per = (df.group_by("problem_id", maintain_order=True)
             .agg(pl.col("answer"), pl.col("gold").first(), pl.col("correct").sum().alias("c"),
                  pl.len().alias("n"), pl.col("tokens").sum(), pl.col("seconds").sum()))
    rows = per.to_dicts()
    n_problems = len(rows)
    maj_ok = sum(1 for r in rows if majority(r["answer"]) == r["gold"])
    pass_ok = sum(1 for r in rows if r["c"] > 0)
    k_max = min((r["n"] for r in rows), default=0)
    rng = random.Random(seed)
    curve = []
    for k in range(1, k_max + 1):
        p_at_k = sum(pass_at_k(r["n"], r["c"], k) for r in rows) / max(1, n_problems)
        maj_k = 0.0
        for r in rows:
            hits = sum(majority(rng.sample(r["answer"], k), rng) == r["gold"] for _ in range(curve_draws))
            maj_k += hits / curve_draws
        curve.append({"k": k, "maj": maj_k / max(1, n_problems), "pass": p_at_k})
    tokens = int(df["tokens"].sum()) if df.height else 0
    seconds = float(df["seconds"].sum()) if df.height else 0.0
    return {
        "problems": n_problems, "responses": df.height, "samples_per_problem": k_max,
        "maj": maj_ok / max(1, n_problems), "maj_ci": wilson(maj_ok, n_problems, z),
        "pass": pass_ok / max(1, n_problems), "pass_ci": wilson(pass_ok, n_problems, z),
        "response_accuracy": float(df["correct"].mean()) if df.height else 0.0,
        "answered": float(df["answer"].is_not_null().mean()) if df.height else 0.0,
        "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "curve": curve,
        "per_problem": [{"problem_id": r["problem_id"], "gold": r["gold"], "maj": majority(r["answer"]),
                         "correct": r["c"], "n": r["n"], "tokens": r["tokens"], "seconds": round(r["seconds"], 2)}
                        for r in rows],
    }
