"""Preference pairs from evaluated responses: the journal's options, the split, and bad input."""

import dataclasses
import json

import polars as pl
import pytest

from aimokit.config import ConfigError
from aimokit.dpo_data import DPODataConfig, DPODataError, build_dpo_data, make_pairs


from marker import MARKER, synthetic_responses


@pytest.fixture(scope="module")
def tokenizer_dir():
    from aimokit.models import embedded_default_model

    return str(embedded_default_model())


def _responses(tmp_path, n=12, **kw):
    df = synthetic_responses(lambda text: f"<user>{text}</user>\n", n=n)
    path = tmp_path / "responses.parquet"
    df.write_parquet(path)
    return path, df


def test_pairs_carry_the_journal_options(tmp_path, tokenizer_dir):
    path, df = _responses(tmp_path)
    cfg = DPODataConfig(responses=[str(path)], out=str(tmp_path / "out"), tokenizer=tokenizer_dir, marker=MARKER,
                        max_pairs_per_problem=3, val_fraction=0.25)
    stats = build_dpo_data(cfg)
    train = pl.read_parquet(tmp_path / "out" / "train.parquet")
    val = pl.read_parquet(tmp_path / "out" / "val.parquet")
    # split by problem, never by pair
    assert set(train["problem_id"]) & set(val["problem_id"]) == set()
    assert stats["problems"] == {"train": 9, "val": 3} and train.height + val.height == 12 * 3  # capped at 3 of 4
    row = train.row(0, named=True)
    assert row["prompt"].endswith("```python\n")  # the code start moved into the prompt
    assert row["chosen"].startswith(MARKER + "\n") and MARKER not in row["rejected"]
    assert not row["rejected"].startswith("```python")
    # the file's row order (evaluate writes problems as they finish) does not change what is built
    df.reverse().write_parquet(tmp_path / "reversed.parquet")
    build_dpo_data(dataclasses.replace(cfg, responses=[str(tmp_path / "reversed.parquet")], out=str(tmp_path / "out2")))
    for name in ("train", "val"):
        assert pl.read_parquet(tmp_path / "out2" / f"{name}.parquet").equals(
            pl.read_parquet(tmp_path / "out" / f"{name}.parquet"))
    chosen_answer = df.filter(pl.col("correct"))["response"].str.extract(r"boxed\{(-?\d+)\}").to_list()
    assert row["chosen"].split("boxed{")[1].split("}")[0] in chosen_answer
    assert stats["tokens"]["prompt_tokens"]["max"] <= 296 and (tmp_path / "out" / "stats.json").is_file()
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["pairs"]["train"] == train.height
    # the same seed gives the same pairs in the same order, whatever the join's threads did
    again = build_dpo_data(dataclasses.replace(cfg, out=str(tmp_path / "again")))
    assert again == stats
    assert pl.read_parquet(tmp_path / "again" / "train.parquet").equals(train)


def test_cap_balance_dedupe_and_length_filter(tmp_path, tokenizer_dir):
    path, df = _responses(tmp_path, n=6)
    doubled = tmp_path / "doubled.parquet"
    pl.concat([df, df]).write_parquet(doubled)  # the same responses twice: dedupe must see through it
    pairs = make_pairs(DPODataConfig(responses=[str(doubled)])).collect()
    assert pairs.height == 6 * 2 * 2  # 2 correct x 2 wrong per problem, duplicates gone
    # balance: a problem with fewer pairs than the cap is topped up to exactly the cap
    one = df.filter(~((pl.col("problem_id") == "arith-0") & (pl.col("sample") == 1)))  # arith-0: 1 correct
    one.write_parquet(path)
    stats = build_dpo_data(DPODataConfig(responses=[str(path)], out=str(tmp_path / "b"), tokenizer=tokenizer_dir,
                                         max_pairs_per_problem=4, balance=True, val_fraction=0.0))
    assert stats["pairs_per_problem"] == {"p50": 4, "p90": 4, "p99": 4, "max": 4}
    assert stats["pairs"]["train"] == 6 * 4
    # length filter: pairs over the limit are dropped; none left is an error, not an empty dataset
    with pytest.raises(DPODataError, match="all 22 pairs are longer than max_prompt_tokens=5"):
        build_dpo_data(DPODataConfig(responses=[str(path)], out=str(tmp_path / "c"), tokenizer=tokenizer_dir,
                                     max_prompt_tokens=5))


def test_bad_input_is_a_clear_error(tmp_path, tokenizer_dir):
    path, df = _responses(tmp_path, n=4)
    df.with_columns(pl.lit(False).alias("correct")).write_parquet(tmp_path / "wrong.parquet")
    with pytest.raises(DPODataError, match=r"no problem has both a correct and a wrong response \(4 problems: 4 with none correct"):
        make_pairs(DPODataConfig(responses=[str(tmp_path / "wrong.parquet")]))
    df.with_columns(pl.lit(True).alias("correct")).write_parquet(tmp_path / "right.parquet")
    with pytest.raises(DPODataError, match="0 with none correct, 4 with none wrong"):
        make_pairs(DPODataConfig(responses=[str(tmp_path / "right.parquet")]))
    df.drop("correct").write_parquet(tmp_path / "cols.parquet")
    with pytest.raises(DPODataError, match=r"missing column\(s\) \['correct'\].*build.py evaluate"):
        make_pairs(DPODataConfig(responses=[str(tmp_path / "cols.parquet")]))
    with pytest.raises(DPODataError, match="no such file"):
        make_pairs(DPODataConfig(responses=[str(tmp_path / "nope.parquet")]))


def test_reference_solutions_stand_in_where_no_sample_is_right(tmp_path):
    path, df = _responses(tmp_path, n=3)
    df.with_columns(pl.lit(False).alias("correct")).write_parquet(path)
    sols = tmp_path / "problems.jsonl"
    sols.write_text("".join(json.dumps({"id": f"arith-{i}", "problem": "p", "solution": f"worked {i}", "answer": i}) + "\n"
                            for i in range(3)))
    pairs = make_pairs(DPODataConfig(responses=[str(path)], solutions=str(sols))).collect()
    assert pairs.height == 3 * 4 and pairs["chosen"].str.starts_with("worked").all()
    assert pairs.filter(pl.col("problem_id") == "arith-1")["chosen"][0] == "worked 1\n\nThe answer is \\boxed{1}."

    # gpt-oss's responses: the reference is written in harmony (reasoning in analysis, the box in final), which
    # the kernel's harmony reader grades right; a fenced-style text there would teach a format it never reads
    from aimokit.answers import extract_answer
    from aimokit.config import CompetitionConfig
    from aimokit.protocols import get_protocol

    harmony = make_pairs(DPODataConfig(responses=[str(path)], solutions=str(sols), protocol="harmony",
                                       code_start_in_prompt=False)).collect()
    chosen = harmony.filter(pl.col("problem_id") == "arith-2")["chosen"][0]
    assert "<|channel|>analysis<|message|>worked 2<|end|>" in chosen and "<|channel|>final" in chosen
    text = get_protocol("harmony").answer_text(chosen, "")
    assert "worked" not in text and extract_answer(text, [], CompetitionConfig()).answer == 2
    with pytest.raises(ConfigError, match="protocol = 'qwen': use one of cot, fenced, harmony, hermes"):
        DPODataConfig(responses=[str(path)], protocol="qwen")


def test_prefer_shorter_pairs_two_correct_answers_the_shorter_chosen(tmp_path, tokenizer_dir):
    short, long_, wrong = "So \\boxed{7}.", "Let me check it twice more, slowly. So \\boxed{7}.", "So \\boxed{8}."
    near = "Thus \\boxed{7}."  # correct, but not (1 + 0.5) x as long as `short`: no pair between them
    df = pl.DataFrame({"problem_id": ["a"] * 4 + ["b"] * 2, "prompt": ["Pa"] * 4 + ["Pb"] * 2,
                       "response": [short, long_, wrong, near, short, long_],
                       "correct": [True, True, False, True, True, True]})
    df.write_parquet(tmp_path / "r.parquet")
    base = DPODataConfig(responses=[str(tmp_path / "r.parquet")], code_start_in_prompt=False)
    plain = make_pairs(base).collect()
    assert set(plain["kind"]) == {"correct_wrong"} and plain.height == 3  # a: three correct x one wrong; b: none
    pairs = make_pairs(dataclasses.replace(base, prefer_shorter=0.5)).collect()
    shorter = pairs.filter(pl.col("kind") == "shorter")
    assert sorted(zip(shorter["problem_id"], shorter["chosen"], shorter["rejected"])) == sorted([
        ("a", near, long_), ("a", short, long_), ("b", short, long_)])  # b, all correct, now has a pair
    stats = build_dpo_data(dataclasses.replace(base, prefer_shorter=0.5, tokenizer=tokenizer_dir, val_fraction=0,
                                               out=str(tmp_path / "out")))
    assert stats["pairs"]["shorter_correct"] == 3 and stats["options"]["prefer_shorter"] == 0.5
    only_right = df.filter(pl.col("correct"))
    only_right.write_parquet(tmp_path / "right.parquet")
    with pytest.raises(DPODataError, match=r"prefer_shorter > 0"):
        make_pairs(DPODataConfig(responses=[str(tmp_path / "right.parquet")]))
    assert make_pairs(DPODataConfig(responses=[str(tmp_path / "right.parquet")], prefer_shorter=0.5)).collect().height == 3
    with pytest.raises(ConfigError, match="prefer_shorter must be >= 0"):
        DPODataConfig(prefer_shorter=-1)
