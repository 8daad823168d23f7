"""Vote policies, each checked against a hand count, and early stop under each."""

import pytest

from aimokit.config import ConfigError, SamplingConfig
from aimokit.votes import Vote, decided, scores, vote_weight, winner

COUNT = SamplingConfig(vote="count", early_stop=[], early_stop_agree=0)


def test_weighted_makes_clean_code_count_more():
    cfg = SamplingConfig(weight_code_clean=1.0, weight_code_error=0.25)
    assert vote_weight(True, 2, 0, cfg) == 1.0 and vote_weight(True, 2, 1, cfg) == 0.25
    votes = [Vote(7, True, 2, 1), Vote(7, True, 2, 1), Vote(9, True, 2, 0)]
    assert scores(votes, cfg) == {7: 0.5, 9: 1.0} and winner(votes, cfg, 0) == 9
    assert winner(votes, COUNT, 0) == 7  # counted, 7 has two
    assert winner([], cfg, 5) == 5
    assert winner([Vote(3), Vote(4)], COUNT, 0) == 3  # a tie goes to the answer voted for first
    assert scores([Vote(3, scale=0.5)], COUNT) == {3: 0.5}  # a cut sample's answer counts half


def test_entropy_weighs_by_the_inverse_mean_entropy():
    cfg = SamplingConfig(vote="entropy", top_logprobs=5, entropy_floor=0.05)
    votes = [Vote(1, entropy=0.5), Vote(1, entropy=0.5), Vote(2, entropy=0.1), Vote(3, entropy=0.0), Vote(4)]
    s = scores(votes, cfg)
    # 1: 2 x 1/0.5 = 4; 2: 1/0.1 = 10; 3: 1/max(0.05, 0) = 20; 4: no entropy, counted as 1 -> 1
    assert s == pytest.approx({1: 4.0, 2: 10.0, 3: 20.0, 4: 1.0})
    assert winner(votes, cfg, 0) == 3


def test_combined_adds_share_confidence_and_consensus():
    cfg = SamplingConfig(vote="combined", top_logprobs=5, vote_share=1.0, vote_confidence=2.0, vote_consensus=0.5)
    votes = [Vote(1, entropy=1.0), Vote(1, entropy=1.0), Vote(1, entropy=3.0), Vote(2, entropy=0.0)]
    s = scores(votes, cfg)
    # 1: share 3/4, confidence mean(1/2, 1/2, 1/4) = 5/12, consensus 0.5 -> 0.75 + 10/12 + 0.5
    # 2: share 1/4, confidence 1 -> 0.25 + 2.0
    assert s == pytest.approx({1: 0.75 + 10 / 12 + 0.5, 2: 2.25})
    assert winner(votes, cfg, 0) == 2


def test_decided_by_agreement_rules_or_a_lead_nothing_pending_can_catch():
    cfg = SamplingConfig(vote="count", early_stop=[[4, 4], [5, 7]], early_stop_agree=0)
    assert decided([Vote(1)] * 4, pending=12, cfg=cfg)
    assert not decided([Vote(1)] * 3 + [Vote(2)], pending=12, cfg=cfg)
    assert decided([Vote(1)] * 3 + [Vote(2)], pending=1, cfg=cfg)  # lead 2 > 1 pending
    assert not decided([Vote(1)] * 3 + [Vote(2)], pending=2, cfg=cfg)  # 2 pending could tie
    assert decided([Vote(1)] * 3, pending=5, cfg=SamplingConfig(early_stop=[], early_stop_agree=3))
    # weighted: the strongest pending vote weighs weight_boxed x the largest code modifier (1.0 here)
    w = SamplingConfig(early_stop=[], early_stop_agree=0)
    clean = Vote(1, True, 1, 0)
    assert decided([clean] * 3, pending=2, cfg=w) and not decided([clean] * 3, pending=3, cfg=w)
    # entropy: one pending sample could be certain (weight 1 / entropy_floor = 20): a lead of 12 is not safe
    e = SamplingConfig(vote="entropy", top_logprobs=5, early_stop=[], early_stop_agree=0)
    assert not decided([Vote(1, entropy=0.25)] * 3, pending=1, cfg=e)
    assert decided([Vote(1, entropy=0.05)] * 3, pending=2, cfg=e)  # 60 against at most 40
    # agreement rules hold under every policy
    agree = SamplingConfig(vote="combined", top_logprobs=5, early_stop=[], early_stop_agree=4)
    assert decided([Vote(7, entropy=2.0)] * 4, pending=20, cfg=agree)


def test_entropy_votes_need_logprobs_and_unknown_policies_are_refused():
    with pytest.raises(ConfigError, match="set solver.top_logprobs >= 1"):
        SamplingConfig(vote="entropy")
    with pytest.raises(ConfigError, match="solver.vote = 'majority': use one of combined, count, entropy, learned, weighted"):
        SamplingConfig(vote="majority")


def test_the_solver_votes_by_entropy_from_what_the_engine_reports(fast_cfg):
    """Three unsure samples say 7, one sure sample says 9: counted, 7 wins; by entropy, 9."""
    from fakes import solve_one

    from aimokit.engine import GenResult

    def respond(prompt, req):
        assert req.top_logprobs == 5
        respond.n += 1
        if respond.n == 4:
            return GenResult("\\boxed{9}", 4, "eos", entropies=[0.01] * 4)
        return GenResult("\\boxed{7}", 4, "eos", entropies=[0.4, 0.6, 0.5, 0.5])

    for vote, expected in (("count", 7), ("entropy", 9)):
        respond.n = 0
        res = solve_one(respond, fast_cfg.override({"solver.vote": vote, "solver.top_logprobs": 5,
                                                    "solver.early_stop": [], "solver.early_stop_agree": 0}))
        assert res.answer == expected, vote
    # counted, 3 of 7 with one pending was already decided; by entropy the fourth sample had to be heard
    rows = sorted(res.responses, key=lambda r: r["finished_at"])
    assert [r["finished_at"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["entropy_mean"] == pytest.approx(0.5) and rows[-1]["entropy_tail"] == pytest.approx(0.01)
