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
  holds at least half the votes;
- `learned`: the logit of a scorer fitted on recorded samples (`build.py select
  fit`, the file in `solver.selector`; aimokit.selector).

A cut sample's answer counts half (`Vote.scale`). Early stop (`decided`) holds
under any policy: the agreement rules count votes, and the leader is safe when
no other answer could catch it even if every pending sample voted for it at the
strongest weight a vote can carry (`learned`, whose score is not a sum of
votes, decides itself: aimokit.selector.Selector.decided).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable

from . import selector
from .candidates import Vote, winner_by
from .config import SamplingConfig
from .registry import POLICIES

NO_ENTROPY = 1.0  # what a vote without entropy statistics counts as under the entropy policies


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
    needs_selector: bool = False  # it reads a fitted selector: solver.selector names the file
    # a policy whose score is not a sum over votes decides itself whether pending samples could turn the vote:
    # (votes, pending, cfg, leader) -> True when they cannot
    decide: Callable[[list[Vote], int, SamplingConfig, int], bool] | None = None


def policy(name: str, needs_entropy: bool = False, needs_selector: bool = False,
           decide: Callable[[list[Vote], int, SamplingConfig, int], bool] | None = None) -> Callable:
    """Register a scoring function as the vote policy `name`."""
    def add(fn: Callable[[list[Vote], SamplingConfig], dict[int, float]]) -> Callable:
        POLICIES.register(name)(Policy(name, fn, needs_entropy, needs_selector, decide))
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


@policy("learned", needs_selector=True,
        decide=lambda votes, pending, cfg, leader: selector.load(cfg.selector).decided(votes, pending, leader))
def _learned(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    return selector.load(cfg.selector).scores(votes)


def scores(votes: list[Vote], cfg: SamplingConfig) -> dict[int, float]:
    """Each answer's score under the configured policy."""
    return POLICIES.get(cfg.vote, "solver.vote").scores(votes, cfg)


def winner(votes: list[Vote], cfg: SamplingConfig, fallback: int) -> int:
    """The best-scored answer; ties go to the answer that was voted for first."""
    if not votes:
        return fallback
    return winner_by(votes, scores(votes, cfg))


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
    pol = POLICIES.get(cfg.vote, "solver.vote")
    if pol.decide is not None:
        return pol.decide(votes, pending, cfg, leader)
    fresh = min(counts) - 1  # an answer no sample has given yet
    challengers = {a for a in counts if a != leader} | {fresh}  # every rival, and a new answer
    strongest = max((Vote(0, True, runs, errors, 0.0) for runs, errors in ((1, 0), (1, 1), (0, 0))),
                    key=lambda v: scores([v], cfg)[0])  # the most one vote can weigh
    for c in challengers:  # an additive score is worst for the leader with every pending vote on one rival
        after = scores(votes + [replace(strongest, answer=c)] * pending, cfg)
        if after.get(c, 0.0) >= after.get(leader, 0.0):
            return False
    return True
