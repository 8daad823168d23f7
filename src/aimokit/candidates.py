"""A problem's candidate answers, each described by the features a selector reads: one definition, so the
kernel, `evaluate`, `replay` and `select fit` see the same numbers.

A `Vote` is what one sample's answer rests on, recorded as the sample finished; a candidate is one distinct
answer with its votes. Features are per candidate and depend only on its own votes and on the counts
(share, margin, finish order), never on the other candidates' texts. That keeps a linear scorer's worst case
computable: early stop (votes.decided) can bound what pending samples could do for a rival.

A feature a source does not record (entropy without logprobs, code counts in a file without them) is None;
`available` says which features a set of problems holds, and the selector fits on those only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# name -> what it measures (the selector's JSON and the fit's report name features by these)
FEATURES: dict[str, str] = {
    "share": "its share of the votes (a cut sample's vote counts half)",
    "count": "log(1 + its votes)",
    "top": "1 when it holds the most votes (ties included)",
    "margin": "(its votes - the best rival's votes) / votes in",
    "first": "when its first vote came, as a share of the votes in (0: first)",
    "boxed": "share of its votes read from a \\boxed{} (else printed by code)",
    "code_runs": "mean over its samples of log(1 + code runs)",
    "code_errors": "share of its samples whose code failed at least once",
    "calls": "mean over its samples of log(1 + tool calls)",
    "tokens": "mean over its samples of log(1 + tokens)",
    "cut": "share of its samples cut short (deadline, length)",
    "entropy_mean": "mean over its samples of their mean token entropy",
    "entropy_median": "mean over its samples of their median token entropy",
    "entropy_tail": "mean over its samples of the mean entropy of their last tokens",
}
COUNTS = ("share", "count", "top", "margin", "first")  # what the votes' number and order give: always known
PER_VOTE = {  # a feature that is a mean over the candidate's votes -> the Vote field it averages
    "boxed": "boxed", "code_runs": "code_runs", "code_errors": "code_errors", "calls": "calls",
    "tokens": "tokens", "cut": "scale", "entropy_mean": "entropy", "entropy_median": "entropy_median",
    "entropy_tail": "entropy_tail",
}


@dataclass(frozen=True)
class Vote:
    """One sample's answer and what it rests on; None: the source did not record it."""

    answer: int
    boxed: bool | None = True
    code_runs: int | None = 0
    code_errors: int | None = 0
    entropy: float | None = None  # the sample's mean token entropy (nats), when logprobs were asked for
    scale: float = 1.0  # 0.5 for an answer read from a sample cut short
    tokens: int | None = None
    calls: int | None = None  # tool calls it made
    entropy_median: float | None = None
    entropy_tail: float | None = None


LOGGED = ("code_runs", "calls", "tokens")  # per-vote values taken as log(1 + x)


def per_vote(name: str, v: Vote) -> float | None:
    """One vote's value of a per-vote feature, before averaging over the candidate's votes."""
    x = getattr(v, PER_VOTE[name])
    if x is None:
        return None
    if name == "cut":
        return float(x < 1.0)
    if name == "code_errors":
        return float(x > 0)
    if name == "boxed":
        return float(bool(x))
    return math.log1p(max(0.0, float(x))) if name in LOGGED else float(x)


@dataclass(frozen=True)
class Tally:
    """What one candidate's features are made of: its votes' number, their weight (scale), when its first vote
    came, and per per-vote feature the sum of its votes' (clipped) values, None if any vote lacks it. Why:
    early stop adds pending votes by the thousand; a tally takes them in one step, not a list rebuilt."""

    n: int
    weight: float
    first: int
    sums: dict[str, float | None]

    def plus(self, values: dict[str, float | None], scale: float, count: int) -> "Tally":
        """This tally with `count` identical votes of these per-vote values added."""
        sums = {k: None if x is None or values.get(k) is None else x + count * values[k]  # type: ignore[operator]
                for k, x in self.sums.items()}
        return Tally(self.n + count, self.weight + count * scale, self.first, sums)


def vote_values(v: Vote, clip: dict[str, tuple[float, float]]) -> dict[str, float | None]:
    """A vote's per-vote feature values, clipped to `clip`'s ranges."""
    out: dict[str, float | None] = {}
    for name in PER_VOTE:
        x = per_vote(name, v)
        lo, hi = clip.get(name, (-math.inf, math.inf))
        out[name] = None if x is None else min(max(x, lo), hi)
    return out


def tallies(votes: list[Vote], clip: dict[str, tuple[float, float]] | None = None) -> dict[int, Tally]:
    """Per candidate answer, in the order first voted for: its tally."""
    clip = clip or {}
    out: dict[int, Tally] = {}
    for i, v in enumerate(votes):
        t = out.get(v.answer) or Tally(0, 0.0, i, {name: 0.0 for name in PER_VOTE})
        out[v.answer] = t.plus(vote_values(v, clip), v.scale, 1)
    return out


def from_tallies(ts: dict[int, Tally], n: int) -> dict[int, dict[str, float | None]]:
    """Each candidate's features from the tallies of all candidates (n: votes in)."""
    total = sum(t.weight for t in ts.values()) or 1.0
    counts = sorted((t.n for t in ts.values()), reverse=True)
    best, second = counts[0], (counts[1] if len(counts) > 1 else 0)
    out: dict[int, dict[str, float | None]] = {}
    for a, t in ts.items():
        rival = second if t.n == best else best
        f: dict[str, float | None] = {"share": t.weight / total, "count": math.log1p(t.n), "top": float(t.n == best),
                                      "margin": (t.n - rival) / n, "first": t.first / n}
        f.update({k: None if x is None else x / t.n for k, x in t.sums.items()})
        out[a] = f
    return out


def features(votes: list[Vote], clip: dict[str, tuple[float, float]] | None = None
             ) -> dict[int, dict[str, float | None]]:
    """Per candidate answer (in the order first voted for): its features, FEATURES' names. `clip` bounds each
    vote's value of a per-vote feature before averaging (a selector's fitted range: what keeps the strongest
    and weakest vote it can meet known)."""
    return from_tallies(tallies(votes, clip), len(votes)) if votes else {}


def winner_by(votes: list[Vote], scores: dict[int, float]) -> int:
    """The best-scored answer; a tie goes to the answer voted for first (votes in finish order)."""
    best = max(scores.values())
    return next(v.answer for v in votes if scores[v.answer] == best)


def available(problems: list[list[Vote]]) -> dict[str, str]:
    """Feature -> '' when every candidate of these problems has it, else why it is left out."""
    have = {name: "" for name in FEATURES}
    for votes in problems:
        for f in features(votes).values():
            for name, x in f.items():
                if x is None and not have[name]:
                    have[name] = f"not recorded for every sample (the {PER_VOTE.get(name, name)} field is null)"
    return have
