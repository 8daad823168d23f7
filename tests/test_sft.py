"""SFT on the kernel's own traces: the text trained on is the text the kernel wrote, tool results carry label -100."""

import json

import polars as pl
import pytest

from aimokit.evaluate import EvalConfig, run_evaluation
from aimokit.problems import Problem
from aimokit.sft_data import IGNORE, SFTDataConfig, SFTDataError, build_sft_data, make_traces, tokenize_trace
from aimokit.train import TrainConfig, TrainDataError, train

from fakes import ScriptedEngine, tir_respond


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from aimokit.models import embedded_default_model

    return AutoTokenizer.from_pretrained(embedded_default_model())


@pytest.fixture
def responses(tmp_path, fast_cfg):
    """A real evaluation (scripted model, real solver and sandbox): each sample runs code, then boxes its output."""
    problems = [Problem("a", "What is 6 * 7?", 42), Problem("b", "And 7 * 6?", 42), Problem("c", "Or 41 + 1?", 41)]
    run_evaluation(fast_cfg, problems, tmp_path / "ev", EvalConfig(samples=3), engine=ScriptedEngine(tir_respond))
    return tmp_path / "ev" / "responses.parquet"


def test_a_trace_is_the_kernels_text_and_only_the_models_own_tokens_are_learned(responses, tokenizer):
    df = pl.read_parquet(responses)
    row = df.filter(pl.col("correct")).row(0, named=True)
    assert row["code_runs"] == 1 and len(row["tool_spans"]) == 1
    (start, end), = row["tool_spans"]
    tool_text = row["response"][start:end]
    assert "```output\n42\n```" in tool_text  # the sandbox's real output, as the protocol appended it

    ex = tokenize_trace(tokenizer, row["prompt"], row["response"], row["tool_spans"], max_length=4096)
    ids, labels = ex["input_ids"], ex["labels"]
    # the training text is exactly what the kernel rendered and the model continued, plus the end of the sequence
    assert tokenizer.decode(ids) == row["prompt"] + row["response"] + tokenizer.eos_token
    learned = [t for t, lab in zip(ids, labels) if lab != IGNORE]
    masked_after_prompt = [t for t, lab in zip(ids, labels) if lab == IGNORE][len(tokenizer.encode(row["prompt"])):]
    assert tokenizer.decode(masked_after_prompt) == tool_text  # the tool's output: -100, every token of it
    assert tokenizer.decode(learned) == row["response"][:start] + row["response"][end:] + tokenizer.eos_token
    assert all(lab in (IGNORE, t) for t, lab in zip(ids, labels))


def test_sft_data_keeps_correct_distinct_and_the_shortest_k(responses, tmp_path):
    df = pl.read_parquet(responses)
    dup = pl.concat([df, df.head(2)])  # repeats are dropped
    dup.write_parquet(tmp_path / "dup.parquet")
    traces = make_traces(SFTDataConfig(responses=[str(tmp_path / "dup.parquet")]))
    correct = df.filter(pl.col("correct")).unique(subset=["problem_id", "prompt", "response"])
    assert traces.height == correct.height and set(traces["problem_id"]) <= {"a", "b", "c"}
    one = make_traces(SFTDataConfig(responses=[str(responses)], shortest_k=1))
    assert one.group_by("problem_id").len()["len"].max() == 1
    shortest = correct.with_columns(pl.col("response").str.len_chars().alias("n")).group_by("problem_id").agg(
        pl.col("n").min())
    got = one.with_columns(pl.col("response").str.len_chars().alias("n")).select("problem_id", "n")
    assert got.sort("problem_id").rows() == shortest.sort("problem_id").rows()
    stats = build_sft_data(SFTDataConfig(responses=[str(responses)], out=str(tmp_path / "sft"), val_fraction=0.34))
    assert stats["traces"]["val"] > 0 and stats["traces"]["train"] + stats["traces"]["val"] == correct.height
    assert (tmp_path / "sft" / "train.parquet").is_file()
    # the file's row order (evaluate writes problems as they finish) does not change what is built
    varied = pl.concat([df, df.with_columns(pl.col("response") + "\nChecked twice.")])  # two traces a problem
    for name, frame in (("varied", varied), ("reversed", varied.reverse())):
        frame.write_parquet(tmp_path / f"{name}.parquet")
        build_sft_data(SFTDataConfig(responses=[str(tmp_path / f"{name}.parquet")], out=str(tmp_path / name),
                                     val_fraction=0.34))
    for split in ("train", "val"):
        built = [pl.read_parquet(tmp_path / name / f"{split}.parquet") for name in ("varied", "reversed")]
        assert built[0].equals(built[1])
    assert pl.read_parquet(tmp_path / "varied" / "train.parquet")["problem_id"].value_counts()["count"].max() == 2


def test_bad_sft_input_names_the_fix(responses, tmp_path, tokenizer):
    pl.read_parquet(responses).with_columns(pl.lit(False).alias("correct")).write_parquet(tmp_path / "w.parquet")
    with pytest.raises(SFTDataError, match="no correct response among 3 problems"):
        make_traces(SFTDataConfig(responses=[str(tmp_path / "w.parquet")]))
    with pytest.raises(SFTDataError, match="no such file"):
        make_traces(SFTDataConfig(responses=[str(tmp_path / "none.parquet")]))
    with pytest.raises(SFTDataError, match="does not fit a response of 5 characters"):
        tokenize_trace(tokenizer, "p", "hello", [[3, 9]], max_length=64)
    with pytest.raises(SFTDataError, match="longer than max_length = 4.*shortest_k"):
        tokenize_trace(tokenizer, "a prompt", "a response", [], max_length=4)
    build_sft_data(SFTDataConfig(responses=[str(responses)], out=str(tmp_path / "sft"), val_fraction=0))
    with pytest.raises(TrainDataError, match="all .* traces are longer than max_length = 8 tokens: raise max_length"):
        train(TrainConfig(method="sft", train_file=str(tmp_path / "sft" / "train.parquet"),
                          output_dir=str(tmp_path / "o"), max_length=8))


def test_sft_trains_on_the_traces_with_tool_results_masked(responses, tmp_path):
    build_sft_data(SFTDataConfig(responses=[str(responses)], out=str(tmp_path / "sft"), val_fraction=0))
    cfg = TrainConfig(method="sft", train_file=str(tmp_path / "sft" / "train.parquet"), output_dir=str(tmp_path / "o"),
                      max_steps=2, per_device_train_batch_size=2, max_length=512, logging_steps=1, save_steps=100)
    adapter = train(cfg)
    assert (adapter / "adapter_config.json").is_file()
    losses = [h["loss"] for h in map(json.loads, (tmp_path / "o" / "log.jsonl").read_text().splitlines()) if "loss" in h]
    assert len(losses) == 2


def _solutions(tmp_path, answer_c="41"):
    path = tmp_path / "solutions.jsonl"
    rows = [{"id": "a", "problem": "What is 6 * 7?", "answer": "42", "solution": "Six sevens are 42."},
            {"id": "c", "problem": "Or 41 + 1?", "answer": answer_c, "solution": "One less than 42."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kernel", ["", "configs/aimo3-gpt-oss-120b.toml", "configs/aimo3-qwen3.toml"])
def test_reference_solutions_become_traces_in_the_kernels_own_format(tmp_path, tokenizer, kernel):
    """No responses: every problem's reference solution is a trace, its prompt rendered as the kernel renders it
    and its answer boxed where the protocol reads answers (it grades right, by the kernel's own extraction)."""
    from aimokit.answers import extract_answer
    from aimokit.config import KernelConfig
    from aimokit.engine.chat import TokenizerRenderer
    from aimokit.protocols import get_protocol

    from layout import ROOT

    cfg = SFTDataConfig(solutions=str(_solutions(tmp_path)), kernel_config=str(ROOT / kernel) if kernel else "")
    traces = make_traces(cfg)
    k = KernelConfig.load(str(ROOT / kernel)) if kernel else KernelConfig()
    protocol = get_protocol(k.solver.protocol)
    assert traces["problem_id"].to_list() == ["a", "c"]
    row = traces.row(0, named=True)
    assert row["prompt"] == protocol.prompt(TokenizerRenderer(tokenizer), "What is 6 * 7?", k.solver, k.competition)
    assert "Six sevens are 42." in row["response"] and row["tool_spans"] == []
    assert extract_answer(protocol.answer_text(row["response"], row["prompt"]), [], k.competition).answer == 42
    if protocol.name == "harmony":  # reasoning in the analysis channel, the answer in the final one
        assert row["response"].startswith("<|channel|>analysis<|message|>Six sevens")
        assert "\\boxed" not in row["response"].split("<|channel|>final")[0]
    ex = tokenize_trace(tokenizer, row["prompt"], row["response"], row["tool_spans"], 4096)
    assert ex["labels"].count(IGNORE) == len(tokenizer.encode(row["prompt"], add_special_tokens=False))


def test_reference_solutions_fill_in_the_problems_no_sample_solved(responses, tmp_path):
    df = pl.read_parquet(responses).with_columns(
        pl.when(pl.col("problem_id") == "c").then(False).otherwise(pl.col("correct")).alias("correct"))
    df.write_parquet(tmp_path / "r.parquet")
    traces = make_traces(SFTDataConfig(responses=[str(tmp_path / "r.parquet")], solutions=str(_solutions(tmp_path))))
    c = traces.filter(pl.col("problem_id") == "c")
    assert c.height == 1 and c["prompt"][0] == df.filter(pl.col("problem_id") == "c")["prompt"][0]
    assert c["response"][0].endswith("\\boxed{41}.")
    assert traces.filter(pl.col("problem_id") == "a").height == df.filter(
        (pl.col("problem_id") == "a") & pl.col("correct")).unique(subset=["response"]).height  # solved: no reference
    with pytest.raises(SFTDataError, match="problem c: the answer 'forty-one' does not read back"):
        make_traces(SFTDataConfig(solutions=str(_solutions(tmp_path, "forty-one"))))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "a", "answer": 1}) + "\n")
    with pytest.raises(SFTDataError, match=r"need column\(s\) \['solution', 'problem'\]"):
        make_traces(SFTDataConfig(solutions=str(tmp_path / "bad.jsonl")))
