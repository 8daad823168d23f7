"""Training: bad input fails before any model work; the marker check (slow) proves DPO reaches vLLM inference."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from aimokit.adapters import AdapterError
from aimokit.config import ConfigError
from aimokit.train import TrainConfig, TrainDataError, train

from layout import ROOT

from marker import MARKER, synthetic_responses


def _tiny_adapter(path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1)
    get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=8, target_modules=["q_proj", "v_proj"])).save_pretrained(path)
    return path


def test_bad_training_input_is_a_clear_error(tmp_path):
    from aimokit.models import embedded_default_model

    model = str(embedded_default_model())
    pl.DataFrame({"prompt": ["p"], "chosen": ["c"]}).write_parquet(tmp_path / "pairs.parquet")
    with pytest.raises(TrainDataError, match=r"dpo needs column\(s\) \['rejected'\]"):
        train(TrainConfig(model=model, train_file=str(tmp_path / "pairs.parquet"), output_dir=str(tmp_path / "o")))
    with pytest.raises(TrainDataError, match="no such file.*build.py dpo-data"):
        train(TrainConfig(model=model, train_file=str(tmp_path / "none.parquet"), output_dir=str(tmp_path / "o")))
    pl.DataFrame({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]}).write_parquet(tmp_path / "ok.parquet")
    other = _tiny_adapter(tmp_path / "other-base")
    with pytest.raises(AdapterError, match="hidden size 64, but .* has 576"):
        train(TrainConfig(model=model, train_file=str(tmp_path / "ok.parquet"), output_dir=str(tmp_path / "o"),
                          init_adapter=str(other)))
    with pytest.raises(ConfigError, match="method = 'ppo'"):
        TrainConfig.load(None, {"method": "ppo"})
    with pytest.raises(ConfigError, match=r"loss_type \['nca'\]: use one or more of .*nca_pair"):
        TrainConfig.load(None, {"loss_type": ["nca"]})
    assert TrainConfig.load(None, {"loss_type": ["nca_pair"]}).loss_type == ["nca_pair"]
    with pytest.raises(ConfigError, match="finetune = 'qlora': use 'lora' or 'full'"):
        TrainConfig.load(None, {"finetune": "qlora"})
    with pytest.raises(ConfigError, match="init_adapter continues a LoRA"):
        TrainConfig.load(None, {"finetune": "full", "init_adapter": "x"})


@pytest.mark.slow
def test_dpo_marker_reaches_vllm_inference_on_held_out_problems(tmp_path):
    """The journal saw its marker in 18% of responses; here DPO (+ the NLL term) must reach 95%."""
    from transformers import AutoTokenizer

    from aimokit.config import CompetitionConfig, SamplingConfig
    from aimokit.dpo_data import DPODataConfig, build_dpo_data
    from aimokit.models import embedded_default_model
    from aimokit.prompts import messages

    model = str(embedded_default_model())
    tok = AutoTokenizer.from_pretrained(model)
    solver, comp = SamplingConfig(prompt="cot"), CompetitionConfig()
    df = synthetic_responses(lambda t: tok.apply_chat_template(messages(t, solver, comp, "cot"), tokenize=False,
                                                               add_generation_prompt=True), n=32)
    df.write_parquet(tmp_path / "responses.parquet")
    stats = build_dpo_data(DPODataConfig(responses=[str(tmp_path / "responses.parquet")], out=str(tmp_path / "data"),
                                         tokenizer=model, marker=MARKER, max_pairs_per_problem=4, val_fraction=0.25))
    assert stats["problems"] == {"train": 24, "val": 8}
    cfg = TrainConfig(model=model, train_file=str(tmp_path / "data" / "train.parquet"), output_dir=str(tmp_path / "dpo"),
                      learning_rate=1e-3, lr_scheduler_type="constant", max_steps=10, per_device_train_batch_size=8, dtype="float32",
                      logging_steps=2, save_steps=5)
    adapter = train(cfg)
    summary = json.loads((tmp_path / "dpo" / "train_summary.json").read_text())
    assert summary["steps"] == 10 and (tmp_path / "dpo" / "checkpoints" / "checkpoint-10").is_dir()
    assert len(summary["step_seconds"]) == 10 and all(s > 0 for s in summary["step_seconds"])
    logged = [json.loads(line) for line in (tmp_path / "dpo" / "log.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in h and "rewards/accuracies" in h for h in logged)
    # the held-out prompts (val problems were never trained on), sampled through vLLM with and without the adapter
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), VLLM_LOGGING_LEVEL="WARNING")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "marker.py"), model, str(adapter),
                           str(tmp_path / "data" / "val.parquet"), "4"], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("MARKER ")).split(" ", 1)[1])
    assert got["n"] == 32
    assert got["with"] >= 0.95, got
    assert got["without"] <= 0.05, got


@pytest.mark.parametrize("loss", ["ipo", "nca_pair"])
def test_the_dpo_follow_up_losses_train(tmp_path, loss):
    """ipo and nca_pair (AIMO-2's 2nd place) go to TRL as named and train: two steps on the embedded model."""
    import math

    pl.DataFrame({"prompt": ["What is 2 + 2?", "What is 3 + 3?"] * 2,
                  "chosen": ["\\boxed{4}", "\\boxed{6}"] * 2,
                  "rejected": ["Let me think about it at length first. \\boxed{5}",
                               "Perhaps, after a long detour, \\boxed{7}"] * 2}).write_parquet(tmp_path / "pairs.parquet")
    cfg = TrainConfig(train_file=str(tmp_path / "pairs.parquet"), output_dir=str(tmp_path / "out"), loss_type=[loss],
                      max_steps=2, per_device_train_batch_size=2, max_length=64, logging_steps=1, save_steps=100)
    adapter = train(cfg)
    assert (adapter / "adapter_config.json").is_file()
    losses = [h["loss"] for h in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines()) if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
