"""The time budget, simulated over whole runs from recorded samples: choose budget settings without a GPU.

Why: the split, the reserve, the per-problem bounds, the number of samples and early stop interact, and a
wrong choice shows only at the end of a five-hour run (problems left unanswered, or time left unused). Here
the kernel's own `TimeBudget` plans each problem of a run, in a random order, on a simulated clock:

- a problem's samples are drawn from its recorded ones (without replacement; at most as many as recorded);
- they decode side by side, each at min(seq_tok_s, tok_s / samples still running) (processor sharing, the
  way a batch shares an engine), so each finishes after its recorded tokens;
- as each finishes its vote is counted and the vote's early stop (votes.decided) may end the problem; the
  planned deadline cuts whatever is still running (its answer is lost);
- the clock starts with the engine's start-up, as the kernel's does.

It reports problems answered, the score, and the time left, over many runs. The throughput figures are
inputs (measured on the target GPU, e.g. by benchmarks/): the simulation knows tokens, not seconds.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Any

from .budget import TimeBudget
from .candidates import Vote
from .config import KernelConfig
from .selection import Samples
from .votes import decided, winner



@dataclass(frozen=True)
class Throughput:
    """What the engine does per second (inputs: measure them on the GPU the kernel will run on)."""

    tok_s: float = 1575.0  # all sequences together (gpt-oss-120b-shaped on one H200 at 8 in flight, issue 25)
    seq_tok_s: float = 226.0  # one sequence alone
    startup_s: float = 300.0  # engine start, paid from the limit

    def __post_init__(self) -> None:
        if self.tok_s <= 0 or self.seq_tok_s <= 0 or self.startup_s < 0:
            raise ValueError("throughput: need tok_s > 0, seq_tok_s > 0 and startup_s >= 0")


def run_problem(samples: Samples, k: int, seconds: float, kernel: KernelConfig, tp: Throughput,
                rng: random.Random) -> tuple[int | None, float, int]:
    """(answer or None, seconds used, tokens generated) of one problem given `k` samples and `seconds`."""
    picked = rng.sample(samples, min(k, len(samples)))
    left = {i: float(max(1, t)) for i, (_, t) in enumerate(picked)}
    votes: list[Vote] = []
    now = done_tokens = 0.0
    while left:
        rate = min(tp.seq_tok_s, tp.tok_s / len(left))
        i = min(left, key=lambda j: left[j])
        dt = left[i] / rate
        if now + dt > seconds:  # the deadline cuts every sample still running
            done_tokens += rate * (seconds - now) * len(left)
            now = seconds
            break
        now += dt
        for j in left:
            left[j] -= rate * dt
        done_tokens += rate * dt * len(left)
        del left[i]
        vote = picked[i][0]
        if vote is not None:
            votes.append(vote)
            if left and decided(votes, len(left), kernel.solver):
                break
    answer = winner(votes, kernel.solver, kernel.competition.fallback_answer) if votes else None
    return answer, now, int(done_tokens)


def simulate(problems: dict[str, tuple[int | None, Samples]], kernel: KernelConfig, tp: Throughput,
             per_run: int = 50, runs: int = 200, seed: int = 0) -> dict[str, Any]:
    """`runs` whole runs of `per_run` problems (drawn from the recorded ones, in random order)."""
    graded = [(pid, gold, s) for pid, (gold, s) in problems.items() if gold is not None and s]
    if not graded:
        raise ValueError("the budget simulation needs graded problems with recorded samples")
    n = min(per_run, len(graded))
    rng = random.Random(seed)
    scores, answered, left, samples_run = [], [], [], []
    comp = kernel.competition
    for _ in range(runs):
        clock = [tp.startup_s]
        budget = TimeBudget(kernel.budget, comp.time_limit_s, n, kernel.solver, started_at=0.0, clock=lambda: clock[0])
        right = got = ran = 0
        for _, gold, samples in rng.sample(graded, n):
            plan = budget.plan()
            if plan.samples == 0 or plan.seconds <= 0:
                budget.record(0, 0.0, 0)
                continue
            answer, used, tokens = run_problem(samples, plan.samples, plan.seconds, kernel, tp, rng)
            clock[0] += used
            budget.record(tokens, used, plan.samples)
            ran += min(plan.samples, len(samples))
            got += answer is not None
            right += answer == gold
        scores.append(right)
        answered.append(got)
        left.append(budget.remaining() + kernel.budget.safety_margin_s)  # to the limit, the margin included
        samples_run.append(ran / n)

    def spread(xs: list[float]) -> dict[str, float]:
        q = statistics.quantiles(xs, n=20) if len(xs) > 1 else [xs[0]] * 19
        return {"mean": statistics.fmean(xs), "p05": q[0], "p95": q[-1], "min": min(xs)}

    return {"runs": runs, "problems_per_run": n, "recorded_problems": len(graded), "throughput": tp.__dict__,
            "limit_s": comp.time_limit_s, "score": spread(scores), "answered": spread(answered),
            "seconds_left": spread(left), "samples_per_problem": spread(samples_run),
            "all_answered": sum(a == n for a in answered) / runs}


def render(result: dict[str, Any]) -> list[str]:
    tp = result["throughput"]
    s, a, t = result["score"], result["answered"], result["seconds_left"]
    lines = ["## The budget, simulated", "",
             f"{result['runs']} runs of {result['problems_per_run']} problems (drawn from {result['recorded_problems']} "
             f"recorded) under a {result['limit_s']:.0f} s limit; engine start {tp['startup_s']:.0f} s, "
             f"{tp['tok_s']:.0f} tok/s together, {tp['seq_tok_s']:.0f} tok/s per sequence at most.", "",
             "| | mean | 5% | 95% | worst |", "|---|---|---|---|---|",
             f"| score | {s['mean']:.1f} | {s['p05']:.1f} | {s['p95']:.1f} | {s['min']:.0f} |",
             f"| problems answered | {a['mean']:.1f} | {a['p05']:.1f} | {a['p95']:.1f} | {a['min']:.0f} |",
             f"| seconds left | {t['mean']:.0f} | {t['p05']:.0f} | {t['p95']:.0f} | {t['min']:.0f} |",
             f"| samples per problem | {result['samples_per_problem']['mean']:.1f} | | | |", "",
             f"Every problem answered in {100 * result['all_answered']:.0f}% of runs. A sample cut by its deadline "
             "loses its answer here (the kernel reads a cut sample's answer at half weight): a lower bound."]
    return lines
