"""AIMO-3's score from recorded samples: the private set is run twice, and a problem scores 1 when both runs
are right, 0.5 when one is. What that rule makes of a policy's run-to-run variance, before a submission.

A run of a problem is k samples drawn from its recorded ones without replacement, in a random finish order,
voted under the policy with its early stop, as the kernel would. For each problem p = P(a run is right) is
computed exactly (every ordered draw, while there are few) or estimated from draws. The two runs are then
independent (default) or identical (`identical`: the rerun writes the same text, as `solver.sync_tool_rounds`
with fixed seeds aims for), and the total score's distribution is the exact convolution of the problems':

    independent: 1 with p^2, 0.5 with 2p(1-p), 0 with (1-p)^2   (mean p, variance p(1-p)/2)
    identical:   1 with p, 0 with 1-p                            (mean p, variance p(1-p))

so identical reruns leave the expected score where it is and widen its spread: the report shows both.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from .config import SamplingConfig
from .selection import Samples, replay_one

EXACT_LIMIT = 20000  # ordered draws enumerated per problem before estimating from random ones


def _right(samples: Samples, order: tuple[int, ...] | list[int], cfg: SamplingConfig, gold: int) -> bool:
    answer, _, _ = replay_one([samples[i] for i in order], cfg, stop_early=True)
    return answer == gold


def run_right(samples: Samples, gold: int, k: int, cfg: SamplingConfig, draws: int, rng: random.Random) -> float:
    """P(one run of k of these samples picks the gold): exact when the ordered draws are few, else estimated."""
    n = len(samples)
    k = min(k, n)
    if n == 0:
        return 0.0
    if math.perm(n, k) <= EXACT_LIMIT:
        orders = list(itertools.permutations(range(n), k))
        return sum(_right(samples, o, cfg, gold) for o in orders) / len(orders)
    return sum(_right(samples, rng.sample(range(n), k), cfg, gold) for _ in range(draws)) / draws


def distribution(ps: list[float], identical: bool) -> list[float]:
    """P(total score = j / 2) for j = 0..2n: the exact convolution of the problems' scores."""
    dist = [1.0]
    for p in ps:
        step = [1 - p, 0.0, p] if identical else [(1 - p) ** 2, 2 * p * (1 - p), p * p]  # in half points
        out = [0.0] * (len(dist) + 2)
        for j, q in enumerate(dist):
            for d, r in enumerate(step):
                out[j + d] += q * r
        dist = out
    return dist


def _quantile(dist: list[float], q: float) -> float:
    acc = 0.0
    for j, p in enumerate(dist):
        acc += p
        if acc >= q - 1e-12:
            return j / 2
    return (len(dist) - 1) / 2


def summary(ps: list[float], identical: bool) -> dict[str, Any]:
    dist = distribution(ps, identical)
    mean = sum(j / 2 * p for j, p in enumerate(dist))
    var = sum((j / 2 - mean) ** 2 * p for j, p in enumerate(dist))
    return {"expected": mean, "std": math.sqrt(max(var, 0.0)), "p05": _quantile(dist, 0.05),
            "p50": _quantile(dist, 0.5), "p95": _quantile(dist, 0.95)}


def simulate(problems: dict[str, tuple[int | None, Samples]], policies: dict[str, SamplingConfig],
             ks: list[int], draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Per policy and samples per run k: each problem's P(right) and the two-run score, independent and
    identical reruns."""
    graded = {pid: (gold, s) for pid, (gold, s) in problems.items() if gold is not None}
    rows = []
    for name, cfg in policies.items():
        for k in ks:
            rng = random.Random(seed)
            ps = [run_right(s, gold, k, cfg, draws, rng) for gold, s in graded.values()]
            rows.append({"policy": name, "k": k, "independent": summary(ps, False), "identical": summary(ps, True),
                         "p": dict(zip(graded, [round(p, 4) for p in ps]))})
    return {"problems": len(graded), "draws": draws, "runs": rows}


def render(result: dict[str, Any]) -> list[str]:
    lines = ["## AIMO-3 score, two runs (1 when both right, 0.5 when one is)", "",
             f"{result['problems']} problems; exact over every ordered draw where there are at most {EXACT_LIMIT}, "
             f"else {result['draws']} random draws per problem.", "",
             "| policy | samples | expected | std, independent runs | 5–95%, independent | std, identical reruns "
             "| 5–95%, identical |", "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        ind, ide = r["independent"], r["identical"]
        lines.append(f"| {r['policy']} | {r['k']} | {ind['expected']:.2f} | {ind['std']:.2f} | {ind['p05']:g}–{ind['p95']:g} "
                     f"| {ide['std']:.2f} | {ide['p05']:g}–{ide['p95']:g} |")
    lines += ["", "Identical reruns keep the expected score and widen its spread (a problem is then all or nothing)."]
    return lines
