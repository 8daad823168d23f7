"""Where the points are lost in choosing among answers, and whether one policy beats another or got lucky.

Why: with many samples the right answer is usually among them (pass@k) and the loss is in the choice. This
module counts that loss per problem and policy from recorded samples (`replay` and `evaluate`'s report
print it), lists the problems where the right answer was there but not picked, with each candidate's votes
and features, and compares two policies on the same problems: the difference in problems solved with a
bootstrap interval over problems, and an exact sign test on the problems where they disagree.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .candidates import Vote, features
from .config import SamplingConfig
from .votes import decided, scores, winner

Samples = list[tuple[Vote | None, int]]  # one problem's samples in finish order: (vote or None, tokens)


def replay_one(samples: Samples, cfg: SamplingConfig, stop_early: bool = True,
               fallback: int = 0) -> tuple[int, int, int]:
    """(answer, tokens spent, samples heard) for one problem under one policy."""
    votes: list[Vote] = []
    spent = 0
    for i, (vote, tokens) in enumerate(samples):
        spent += tokens
        if vote is None:
            continue
        votes.append(vote)
        pending = len(samples) - i - 1
        if pending and stop_early and decided(votes, pending, cfg):
            return winner(votes, cfg, fallback), spent, i + 1
    return winner(votes, cfg, fallback), spent, len(samples)


def chosen(samples: Samples, cfg: SamplingConfig, fallback: int = 0) -> int:
    """The answer `cfg`'s policy picks from every sample (no early stop: the choice alone)."""
    return winner([v for v, _ in samples if v is not None], cfg, fallback)


AS_RUN = "as run"  # the answer the run itself gave (its vote, or GenSelect's pick), where the file records it


def loss(problems: dict[str, tuple[int | None, Samples]], policies: dict[str, SamplingConfig],
         focus: str, chosen: dict[str, int | None] | None = None) -> dict[str, Any]:
    """Per graded problem and in total: samples, pass@k (the gold among the answers, which is also what an
    oracle selection scores), each policy's pick and whether it is right (and the run's own answer, given
    `chosen`); and the problems `focus` missed although the gold was among the samples, with every
    candidate's votes, score and features."""
    rows, missed = [], []
    for pid, (gold, samples) in problems.items():
        if gold is None:
            continue
        votes = [v for v, _ in samples if v is not None]
        row: dict[str, Any] = {"problem_id": pid, "samples": len(samples), "answered": len(votes),
                               "pass": any(v.answer == gold for v in votes),
                               "right_votes": sum(v.answer == gold for v in votes)}
        for name, cfg in policies.items():
            pick = winner(votes, cfg, 0)
            row[name] = {"answer": pick if votes else None, "correct": bool(votes) and pick == gold}
        if chosen:
            row[AS_RUN] = {"answer": chosen.get(pid), "correct": chosen.get(pid) == gold}
        rows.append(row)
        if row["pass"] and focus in row and not row[focus]["correct"]:
            score = scores(votes, policies[focus])
            cands = [{"answer": a, "votes": sum(v.answer == a for v in votes), "gold": a == gold,
                      "score": round(score[a], 4), "features": {k: None if x is None else round(x, 4)
                                                                for k, x in f.items()}}
                     for a, f in features(votes).items()]
            missed.append({"problem_id": pid, "gold": gold, "picked": row[focus]["answer"],
                           "candidates": sorted(cands, key=lambda c: -c["votes"])})
    n = len(rows)
    passed = sum(r["pass"] for r in rows)
    totals = {name: sum(r[name]["correct"] for r in rows) for name in [*policies, *([AS_RUN] if chosen else [])]}
    return {"problems": n, "pass": passed, "oracle": passed, "correct": totals,
            "lost": {name: passed - c for name, c in totals.items()}, "focus": focus, "per_problem": rows,
            "missed": missed}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if both policies were equal."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(a: list[bool], b: list[bool], draws: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Policy A against B on the same problems: problems solved by A minus by B, a percentile bootstrap
    interval of that difference (problems resampled), and the sign test over the problems they disagree on."""
    if len(a) != len(b):
        raise ValueError("paired: both policies must be scored on the same problems")
    diff = [int(x) - int(y) for x, y in zip(a, b)]
    n = len(diff)
    rng = random.Random(seed)
    boot = sorted(sum(diff[rng.randrange(n)] for _ in range(n)) for _ in range(draws)) if n else [0]
    lo = boot[int((1 - level) / 2 * (len(boot) - 1))]
    hi = boot[int((1 + level) / 2 * (len(boot) - 1))]
    wins, losses = diff.count(1), diff.count(-1)
    return {"problems": n, "a_right": sum(map(int, a)), "b_right": sum(map(int, b)), "difference": sum(diff),
            "ci": [lo, hi], "level": level, "a_only": wins, "b_only": losses, "sign_p": sign_test(wins, losses)}


def render_loss(result: dict[str, Any], comparisons: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Markdown lines: the totals, the missed problems of the focus policy, and each paired comparison."""
    lines = ["## Selection loss", "",
             f"{result['problems']} graded problems; the right answer among the samples (pass@k, what an oracle "
             f"selection scores) on {result['pass']}.", "",
             "| policy | correct | lost to selection |", "|---|---|---|"]
    for name, c in result["correct"].items():
        lines.append(f"| {name} | {c}/{result['problems']} | {result['lost'][name]} |")
    if result["missed"]:
        lines += ["", f"### Right answer among the samples, not picked by {result['focus']}", "",
                  "| problem | gold | picked | candidates (answer: votes, score) |", "|---|---|---|---|"]
        for m in result["missed"]:
            cands = ", ".join(f"{'**' if c['gold'] else ''}{c['answer']}: {c['votes']}, {c['score']}"
                              f"{'**' if c['gold'] else ''}" for c in m["candidates"][:8])
            lines.append(f"| {m['problem_id']} | {m['gold']} | {m['picked']} | {cands} |")
    for a, b, p in comparisons:
        lines += ["", f"### {a} against {b} (paired, {p['problems']} problems)", "",
                  f"{a} {p['a_right']}, {b} {p['b_right']}: difference {p['difference']:+d}, {int(100 * p['level'])}% bootstrap "
                  f"interval [{p['ci'][0]:+d}, {p['ci'][1]:+d}]; only {a} right on {p['a_only']}, only {b} on "
                  f"{p['b_only']}: sign test p = {p['sign_p']:.3f}."]
    return lines
