"""How a problem's sample answers become one answer, and when more samples cannot change it.

A `Vote` records what a sample's answer rests on (boxed or printed, its code's
runs and errors, the model's mean token entropy while writing it); the policy
(`solver.vote`) turns votes into scores per answer:

- `count`: one vote each;
- `weighted`: the kit's weights for boxed / printed answers and clean / failing
  code (`solver.weight_*`);
- `entropy`: the inverse of the sample's mean token entropy (AIMO-3's winners:
  confident samples count more); a vote without entropy counts as entropy 1;
- `combined`: per answer, `vote_share` × its share of votes + `vote_confidence`
  × its votes' mean confidence (1 / (1 + entropy)) + `vote_consensus` if it
  holds at least half the votes.

A cut sample's answer counts half (`Vote.scale`). Early stop (`decided`) holds
under any policy: the agreement rules count votes, and the leader is safe when
no other answer could catch it even if every pending sample voted for it at the
strongest weight a vote can carry.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable

from .config import SamplingConfig
from .registry import POLICIES

NO_ENTROPY = 1.0  # what a vote without entropy statistics counts as under the entropy policies


@dataclass(frozen=True)
class Vote:
    answer: int
    boxed: bool = True
    code_runs: int = 0
    code_errors: int = 0
    entropy: float | None = None  # the sample's mean token entropy (nats), when logprobs were asked for
    scale: float = 1.0  # 0.5 for an answer read from a sample cut short


def vote_weight(boxed: bool, code_runs: int, code_errors: int, cfg: SamplingConfig) -> float:
    """The `weighted` policy's weight of one answer."""
    base = cfg.weight_boxed if boxed else cfg.weight_unboxed
    if code_runs == 0:
        return base * cfg.weight_no_code
    return base * (cfg.weight_code_error if code_errors else cfg.weight_code_clean)


@dataclass(frozen=True)
class Policy:
    """A vote policy: each answer's score from the votes (registered under `name` in registry.POLICIES)."""

    name: str
    scores: Callable[[list[Vote], SamplingConfig], dict[int, float]]
    needs_entropy: bool = False  # it reads token entropy: the engine must return logprobs (solver.top_logprobs)


def policy(name: str, needs_entropy: bool = False) -> Callable:
    """Register a scoring function as the vote policy `name`."""
    def add(fn: Callable[[list[Vote], SamplingConfig], dict[int, float]]) -> Callable:
        POLICIES.register(name)(Policy(name, fn, needs_entropy))
        return fn
    return add


def _additive(votes: list[Vote], w: Callable[[Vote], float]) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for v in votes:
        totals[v.answer] += w(v) * v.scale
    return dict(totals)


@policy("count")
def _count(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    return _additive(votes, lambda v: 1.0)


@policy("weighted")
def _weighted(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    return _additive(votes, lambda v: vote_weight(v.boxed, v.code_runs, v.code_errors, cfg))


@policy("entropy", needs_entropy=True)
def _entropy(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    return _additive(votes, lambda v: 1.0 / max(cfg.entropy_floor, NO_ENTROPY if v.entropy is None else v.entropy))


@policy("combined", needs_entropy=True)
def _combined(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    n = sum(v.scale for v in votes)
    by: dict[int, list[Vote]] = defaultdict(list)
    for v in votes:
        by[v.answer].append(v)
    out = {}
    for answer, vs in by.items():
        share = sum(v.scale for v in vs) / n if n else 0.0
        conf = sum(1.0 / (1.0 + (NO_ENTROPY if v.entropy is None else v.entropy)) for v in vs) / len(vs)
        out[answer] = (cfg.vote_share * share + cfg.vote_confidence * conf
                       + (cfg.vote_consensus if share >= 0.5 else 0.0))
    return out


def scores(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    """Each answer's score under the configured policy."""
    return POLICIES.get(cfg.vote, "solver.vote").scores(votes, cfg)


def winner(votes: list[Vote], cfg: SamplingConfig, fallback: int) -> int:
    """The best-scored answer; ties go to the answer that was voted for first."""
    if not votes:
        return fallback
    totals = scores(votes, cfg)
    best = max(totals.values())
    for v in votes:
        if totals[v.answer] == best:
            return v.answer
    return fallback


def decided(votes: list[Vote], pending: int, cfg: SamplingConfig) -> bool:
    """True when the pending samples cannot change the winner (or an agreement rule says stop)."""
    if not votes:
        return False
    counts: dict[int, int] = defaultdict(int)
    for v in votes:
        counts[v.answer] += 1
    top, n = max(counts.values()), len(votes)
    if cfg.early_stop_agree and top >= cfg.early_stop_agree:
        return True
    if any(top >= agree and n <= out_of for agree, out_of in cfg.early_stop):
        return True
    leader = winner(votes, cfg, votes[0].answer)
    strongest = max((Vote(0, True, runs, errors, 0.0) for runs, errors in ((1, 0), (1, 1), (0, 0))),
                    key=lambda v: scores([v], cfg)[0])  # the most one vote can weigh
    challengers = {a for a in counts if a != leader} | {min(counts) - 1}  # every rival, and a new answer
    for c in challengers:
        extra = [replace(strongest, answer=c)] * pending
        after = scores(votes + extra, cfg)
        if after.get(c, 0.0) >= after.get(leader, 0.0):
            return False
    return True
