"""A learned scorer of candidate answers: fitted on recorded samples, a small JSON file, voted with in the kernel.

Why: in AIMO-3 majority voting lost about 3.5 of pass@20's 45.5 problems in choosing among answers, and the
teams that did better tuned their scores by hand. Here a logistic regression over the candidates' features
(candidates.FEATURES) is fitted with cross-validation grouped by problem, and reported against every
built-in policy on the same held-out problems with a paired interval, so a better scorer can be told from a
lucky one. The model is numbers in JSON: the kernel needs numpy only, which it already has.

An answer's score is its logit. Features are clipped to the range seen in fitting and standardised; one a
run does not record counts as the fitting mean (0 after standardising). Because the score is linear in
features that each depend only on the candidate's own votes and the counts, the strongest vote a pending
sample could add for a rival is known (`strongest`), which keeps early stop safe under this policy.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .candidates import (FEATURES, LOGGED, PER_VOTE, Tally, Vote, available, features, from_tallies,
                         per_vote, tallies, vote_values, winner_by)
from .errors import AimokitError
from .io import atomic_write

FORMAT = "aimokit.selector/1"
SPLIT_LIMIT = 6  # pending samples beyond which the lead does not stop a learned vote (only the agreement rules)


class SelectorError(AimokitError, ValueError):
    """A selector file that cannot be used, or data a selector cannot be fitted on; the message says why."""


@dataclass(frozen=True)
class Selector:
    """The fitted scorer: per feature its coefficient, its fitting mean and spread, and its range."""

    features: list[str]
    coef: list[float]
    intercept: float
    mean: list[float]
    std: list[float]
    low: list[float]
    high: list[float]
    vote_range: dict[str, list[float]] = field(default_factory=dict)  # per-vote feature -> [low, high] fitted
    kit_version: str = ""
    fitted_on: dict[str, Any] = field(default_factory=dict)  # problems, candidates, files, left-out features

    def __post_init__(self) -> None:
        n = len(self.features)
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise SelectorError(f"selector features {unknown} are not known to this kit ({', '.join(FEATURES)})")
        lists = (self.coef, self.mean, self.std, self.low, self.high)
        if any(not isinstance(x, list) or len(x) != n for x in lists):
            raise SelectorError("selector: coef, mean, std, low and high must each have one entry per feature")
        numbers = [self.intercept, *(v for x in lists for v in x),
                   *(v for r in self.vote_range.values() for v in (r if isinstance(r, list) else [None]))]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise SelectorError("selector: every coefficient, mean, spread and range must be a finite number")
        if any(s <= 0 for s in self.std) or any(len(r) != 2 for r in self.vote_range.values()):
            raise SelectorError("selector: spreads must be > 0 and each vote range a [low, high] pair")

    def row(self, f: dict[str, float | None]) -> list[float]:
        """A candidate's standardised, clipped feature values (a missing one: the fitting mean, so 0)."""
        out = []
        for name, m, s, lo, hi in zip(self.features, self.mean, self.std, self.low, self.high):
            x = f.get(name)
            out.append(0.0 if x is None else (min(max(x, lo), hi) - m) / s)
        return out

    @functools.cached_property
    def _terms(self) -> list[tuple[str, float, float, float, float]]:
        """(feature, coefficient / spread, mean, low, high): the logit's terms, worked out once."""
        return [(n, c / s, m, lo, hi) for n, c, m, s, lo, hi
                in zip(self.features, self.coef, self.mean, self.std, self.low, self.high)]

    def logit(self, f: dict[str, float | None]) -> float:
        """intercept + coef . row(f), without building the row (early stop calls it by the thousand)."""
        total = self.intercept
        for name, w, m, lo, hi in self._terms:
            x = f.get(name)
            if x is not None:
                total += w * ((lo if x < lo else hi if x > hi else x) - m)
        return total

    def scores(self, votes: list[Vote]) -> dict[int, float]:
        clip = {k: (lo, hi) for k, (lo, hi) in self.vote_range.items()}
        return {a: self.logit(f) for a, f in features(votes, clip).items()}

    def extremes(self) -> tuple[Vote, Vote]:
        """(strongest, weakest): the votes that raise and lower their answer's score the most, each recorded
        field at the end of its fitted range the coefficient favours or disfavours (the count features do not
        depend on them). What votes.decided tries pending samples as."""
        return self._extreme(1.0), self._extreme(-1.0)

    def _extreme(self, sign: float) -> Vote:
        want: dict[str, float] = {}
        for name, c in zip(self.features, self.coef):
            if name in PER_VOTE:
                lo, hi = self.vote_range.get(name, (0.0, 1.0))
                want[name] = hi if c * sign > 0 else lo

        def raw(name: str, default: float) -> float:  # the vote field that gives the per-vote value
            x = want.get(name)
            return default if x is None else (math.expm1(x) if name in LOGGED else x)
        return Vote(0, boxed=want.get("boxed", 1.0) >= 0.5, code_runs=max(0, round(raw("code_runs", 0.0))),
                    code_errors=int(want.get("code_errors", 0.0) >= 0.5), entropy=raw("entropy_mean", 0.0),
                    scale=0.5 if want.get("cut", 0.0) >= 0.5 else 1.0, tokens=max(0, round(raw("tokens", 0.0))),
                    calls=max(0, round(raw("calls", 0.0))), entropy_median=raw("entropy_median", 0.0),
                    entropy_tail=raw("entropy_tail", 0.0))

    def decided(self, votes: list[Vote], pending: int, leader: int) -> bool:
        """True when no way the pending samples could vote turns the winner away from `leader`.

        The score is not a sum over votes (shares, margins and means), so pending votes on the leader that
        lower its means can turn it as well as votes for a rival. Every split of the pending samples into j
        weakest votes for the leader, k strongest for a rival (each existing one, or a new answer) and the
        rest on new answers (all on one, or one each) is tried, each kind whole or cut (a cut vote weighs
        half in the share), and a new answer's first vote as early or as late as it could come. The features
        are linear in these choices' ends, so the ends are the worst cases. Beyond SPLIT_LIMIT pending the
        lead never stops the vote (the agreement rules still may): the search grows as pending squared.
        """
        if pending > SPLIT_LIMIT:
            return False
        clip = {k: (lo, hi) for k, (lo, hi) in self.vote_range.items()}
        base = tallies(votes, clip)
        n0, n = len(votes), len(votes) + pending
        strong, weak = (vote_values(v, clip) for v in self.extremes())
        fresh = min(base) - 1
        blank = Tally(0, 0.0, 0, {name: 0.0 for name in PER_VOTE})
        halves = (1.0, 0.5)
        for c in [a for a in base if a != leader] + [fresh]:
            for j, k in itertools.product(range(pending + 1), range(pending + 1)):
                r = pending - j - k
                if r < 0 or (c == fresh and k == 0):
                    continue
                # a choice that changes nothing in this split is not tried twice
                for low, high, rest_scale in itertools.product(halves if j else (1.0,), halves if k else (1.0,),
                                                               halves if r else (1.0,)):
                    ts = dict(base)
                    ts[leader] = base[leader].plus(weak, low, j)
                    starts = (n0, n - k) if c == fresh and n - k != n0 else (n0,) if c == fresh else (base[c].first,)
                    for start in starts:
                        t = base[c] if c != fresh else Tally(0, 0.0, start, blank.sums)
                        ts[c] = t.plus(strong, high, k) if k else t
                        for spread in ((True, False) if r > 1 else (True,)):
                            trial = dict(ts)
                            others = [fresh - 1 - i for i in range(r if spread else min(r, 1))]
                            for i, b in enumerate(others):
                                trial[b] = Tally(0, 0.0, n0 + i, blank.sums).plus(strong, rest_scale,
                                                                                   1 if spread else r)
                            if c == fresh and k == 0:
                                trial.pop(c, None)
                            f = from_tallies(trial, n)
                            top = self.logit(f[leader])
                            if any(self.logit(x) >= top for a, x in f.items() if a != leader):
                                return False
        return True

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2)


def save(sel: Selector, path: str | Path) -> None:
    atomic_write(Path(path), sel.to_json())


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Selector:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SelectorError(f"solver.selector = {path!r}: not a readable JSON file ({e}); write one with "
                            "`build.py select fit`") from None
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise SelectorError(f"solver.selector = {path!r}: not a selector file ({FORMAT}); write one with "
                            "`build.py select fit`")
    try:
        return Selector(**data)
    except TypeError as e:
        raise SelectorError(f"solver.selector = {path!r}: {e}") from None


def load(path: str | Path) -> Selector:
    """The selector in `path`, read once per change of the file."""
    p = Path(path)
    if not p.is_file():
        raise SelectorError(f"solver.selector = {str(path)!r}: no such file; write one with `build.py select fit`")
    return _load(str(p.resolve()), p.stat().st_mtime)


# --- fitting ------------------------------------------------------------------------------------------------

Problem = tuple[int | None, list[Vote]]  # gold, votes in the order the samples finished


def design(problems: list[Problem], names: list[str]) -> tuple[list[list[float | None]], list[int], list[int]]:
    """Rows (one per candidate of a graded problem), labels (1: the candidate is the gold) and problem index."""
    X, y, group = [], [], []
    for i, (gold, votes) in enumerate(problems):
        if gold is None:
            continue
        for a, f in features(votes).items():
            X.append([f[n] for n in names])
            y.append(int(a == gold))
            group.append(i)
    return X, y, group


def fit(problems: list[Problem], names: list[str] | None = None, l2: float = 1.0, kit_version: str = "") -> Selector:
    """A logistic regression of "this candidate is the gold" on the features, L2-penalised (Newton steps)."""
    import numpy as np

    if names is None:
        have = available([v for _, v in problems])
        names = [n for n in FEATURES if not have[n]]
    X, y, group = design(problems, names)
    if not X or len(set(y)) < 2:
        raise SelectorError("the selector needs graded problems with both right and wrong candidates; these have "
                            f"{len(X)} candidates, {sum(y)} right")
    A = np.array(X, dtype=float)
    low, high = A.min(axis=0), A.max(axis=0)
    mean, std = A.mean(axis=0), A.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    Z = np.hstack([np.ones((len(A), 1)), (A - mean) / std])
    t = np.array(y, dtype=float)
    w = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -30, 30)))
        grad = Z.T @ (p - t) + penalty * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    vote_range = {}
    for name in names:
        if name in PER_VOTE:
            xs = [x for _, votes in problems for v in votes if (x := per_vote(name, v)) is not None]
            vote_range[name] = [min(xs), max(xs)]
    return Selector(list(names), [float(x) for x in w[1:]], float(w[0]), [float(x) for x in mean],
                    [float(x) for x in std], [float(x) for x in low], [float(x) for x in high], vote_range, kit_version,
                    {"problems": len(set(group)), "candidates": len(X), "right": int(sum(y))})


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    """Problem indices split into k folds at random (problems are the unit: grouped cross-validation)."""
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def cross_validate(problems: list[Problem], k: int = 5, seed: int = 0, l2: float = 1.0,
                   names: list[str] | None = None) -> list[int | None]:
    """The learned selector's answer to each problem, from a model fitted on the other folds."""
    if names is None:
        have = available([v for _, v in problems])
        names = [n for n in FEATURES if not have[n]]
    chosen: list[int | None] = [None] * len(problems)
    for held in folds(len(problems), min(k, max(2, len(problems))), seed):
        held_set = set(held)
        sel = fit([p for i, p in enumerate(problems) if i not in held_set], names, l2)
        for i in held:
            votes = problems[i][1]
            chosen[i] = winner_by(votes, sel.scores(votes)) if votes else None
    return chosen


__all__ = ["FEATURES", "Selector", "SelectorError", "cross_validate", "fit", "load", "save"]
