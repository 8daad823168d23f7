"""Replay: every policy's figures on a small recorded file, checked against a hand count."""

import subprocess
import sys

import polars as pl
import pytest
from layout import ROOT

from aimokit.replay import ReplayError, read, render, replay


def _recorded(tmp_path, with_entropy=True):
    """A (gold 5): 5, 5, 3 (sure), 5, 5, no answer. B (gold 8): 8 (sure), 9, 9, 8 (sure). Finish order as listed."""
    rows = []
    for pid, gold, samples, tokens in (("A", 5, [(5, 1.0), (5, 1.0), (3, 0.1), (5, 1.0), (5, 1.0), (None, None)], 10),
                                       ("B", 8, [(8, 0.2), (9, 1.0), (9, 1.0), (8, 0.2)], 20)):
        for i, (answer, entropy) in enumerate(samples):
            rows.append({"problem_id": pid, "sample": len(samples) - 1 - i,  # sample index is not finish order
                         "answer": answer, "gold": gold, "tokens": tokens, "boxed": True, "code_runs": 0,
                         "code_errors": 0, "finished_at": i + 1 if answer is not None else 0,
                         "entropy_mean": entropy if with_entropy else None})
    path = tmp_path / "responses.parquet"
    pl.DataFrame(rows, schema_overrides={"answer": pl.Int64, "entropy_mean": pl.Float64}).write_parquet(path)
    return path


# (correct of 2, tokens, samples heard), worked by hand. All votes are boxed without code, so `weighted` ranks as
# `count`. lead: A is safe after its 5th sample (5 has 4 votes, one sample pending), B never (2-2 at the end,
# the tie to 8, voted first): 50 + 80 tokens. The rules ([4, 4], [5, 7], [6, 9]) and agree4 stop A at the same
# sample. entropy (weights 1/H: 1, 10, 5): A's sure 3 (10) beats four 5s (4), and a pending sample could weigh
# 20, so only agree4 stops early. combined: A's 5 holds share 0.8 + confidence 0.5 + consensus 0.5 = 1.8 against
# 3's 0.2 + 0.91; B's 8 wins 0.5 + 0.83 + 0.5 against 9's 1.5.
HAND_COUNT = {
    **{(v, "none"): (2, 140, 10) for v in ("count", "weighted", "combined")},
    **{(v, s): (2, 130, 9) for v in ("count", "weighted", "combined") for s in ("lead", "rules", "agree4")},
    # entropy: the sure 3 outweighs four unsure 5s; with 4 agreeing on 5 it stops early, and still answers 3
    ("entropy", "none"): (1, 140, 10), ("entropy", "lead"): (1, 140, 10), ("entropy", "rules"): (1, 140, 10),
    ("entropy", "agree4"): (1, 130, 9),
}


def test_every_policy_matches_the_hand_count(tmp_path):
    result = replay(read([str(_recorded(tmp_path))]))
    got = {(r["vote"], r["early_stop"]): (r["correct"], r["tokens"], r["samples_heard"]) for r in result["policies"]}
    assert got == HAND_COUNT
    assert result["tokens_all"] == 140 and result["order"] == "finished_at"
    assert result["skipped"] == ["learned: no selector given (--set solver.selector=FILE, written by `build.py "
                                 "select fit`)"]
    row = next(r for r in result["policies"] if (r["vote"], r["early_stop"]) == ("count", "lead"))
    assert row["token_share"] == pytest.approx(130 / 140) and row["ci"][0] < 1.0 <= row["ci"][1] + 1e-9
    assert "| count | lead | 2/2 | 100.0% |" in render(result)


def test_without_entropy_the_entropy_policies_are_skipped_with_the_reason(tmp_path):
    result = replay(read([str(_recorded(tmp_path, with_entropy=False))]))
    assert {r["vote"] for r in result["policies"]} == {"count", "weighted"}
    entropy = [s for s in result["skipped"] if not s.startswith("learned")]
    assert len(entropy) == 2 and all("solver.top_logprobs >= 1" in s for s in entropy)


def test_a_file_that_is_not_responses_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"problem_id": ["a"]}).write_parquet(bad)
    with pytest.raises(ReplayError, match=r"missing column\(s\) \['sample', 'answer', 'gold', 'tokens'\]"):
        read([str(bad)])
    with pytest.raises(ReplayError, match="no such file"):
        read([str(tmp_path / "nope.parquet")])


def test_the_cli_prints_the_table_and_writes_it(tmp_path):
    path = _recorded(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "replay", "--responses", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| entropy | agree4 | 1/2 | 50.0% |" in proc.stdout
    assert (tmp_path / "replay.md").is_file() and (tmp_path / "replay.json").is_file()


def test_replay_rereads_answers_under_either_region_to_compare_the_rules(tmp_path):
    """Recorded harmony samples that boxed in analysis and never reached final: the final-channel rule reads no
    box there, the winners' any-channel rule reads it; `build.py replay --reread` compares the two."""
    import polars as pl

    from aimokit.config import CompetitionConfig, SamplingConfig
    from aimokit.replay import reread

    analysis = "<|channel|>analysis<|message|>So \\boxed{42}"
    final = "<|channel|>analysis<|message|>hm \\boxed{7}<|end|><|start|>assistant<|channel|>final<|message|>\\boxed{42}"
    df = pl.DataFrame({"problem_id": ["a", "a", "b"], "sample": [0, 1, 0], "answer": [None, 42, None],
                       "gold": [42, 42, 42], "tokens": [10, 10, 10], "response": [analysis, final, analysis],
                       "prompt": ["", "", ""]})
    comp = CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)
    by_final = reread(df, SamplingConfig(protocol="harmony"), comp)
    anywhere = reread(df, SamplingConfig(protocol="harmony", answer_region="anywhere"), comp)
    assert by_final["answer"].to_list() == [None, 42, None] and anywhere["answer"].to_list() == [42, 42, 42]
    path = tmp_path / "responses.parquet"
    df.write_parquet(path)
    import subprocess
    import sys

    from layout import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "replay", "--responses", str(path), "--reread",
                           "--set", "solver.protocol=harmony", "--set", "solver.answer_region=anywhere",
                           "--set", "competition.answer_max=99999", "--set", "competition.modulo=0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = __import__("json").loads((tmp_path / "replay.json").read_text())
    count = next(r for r in result["policies"] if r["vote"] == "count" and r["early_stop"] == "none")
    assert result["problems"] == 2 and count["correct"] == 2  # as recorded (final rule): 1 of 2
