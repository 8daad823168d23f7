"""`build.py preflight`: each row against the input class it guards, each failing without its fix."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from aimokit.config import KernelConfig
from aimokit.kaggle import preflight as pf
from aimokit.kaggle.build import build_all
from aimokit.kaggle.config import ShipConfig
from aimokit.weights import check_model_dir

from layout import ROOT, lay_out_competition

COMP = "ai-mathematical-olympiad-progress-prize-3"
SHIPPED = KernelConfig.load(ROOT / "configs" / "aimo3.toml", {
    "competition.data_dir": f"kaggle:competitions/{COMP}",
    "engine.model": "kaggle:datasets/alice/deepseek-math/deepseek-math-7b-rl",
    "engine.lora": ""})
ATTACHED = {COMP, "alice/deepseek-math"}


def _listing(*dirs: str) -> dict:
    out = {".": 0}
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            out["/".join(parts[:i])] = 1
    return {"kaggle_input": out}


@pytest.mark.parametrize("layout", [
    (f"competitions/{COMP}", "datasets/alice/deepseek-math/deepseek-math-7b-rl"),  # 2026
    (COMP, "deepseek-math/deepseek-math-7b-rl"),  # the flat layout of older notebooks
])
def test_inputs_resolve_against_the_probes_listing_under_each_layout(layout):
    got = pf.check_inputs(SHIPPED, _listing(*layout), ATTACHED)
    assert got.status == "ok", got.detail
    assert "layout" in got.detail


def test_an_input_the_probe_did_not_see_fails_and_one_it_had_not_attached_is_a_warning():
    got = pf.check_inputs(SHIPPED, _listing(f"competitions/{COMP}"), ATTACHED)
    assert got.status == "fail" and "deepseek-math" in got.detail and "attach" in got.detail
    got = pf.check_inputs(SHIPPED, _listing(f"competitions/{COMP}"), {COMP})
    assert got.status == "warn" and "not attached when the probe ran" in got.detail
    assert pf.check_inputs(SHIPPED, None, ATTACHED).status == "skip"


def test_the_vocabulary_row_checks_presence_and_tiktokens_hash(tmp_path):
    from aimokit import vocab

    assert pf.check_vocab(None).status == "fail"
    assert pf.check_vocab(tmp_path).status == "fail"
    vocab.ship(tmp_path)
    assert pf.check_vocab(tmp_path).status == "ok"
    (tmp_path / vocab.FILE).write_bytes(b"damaged")
    assert "not tiktoken's" in pf.check_vocab(tmp_path).detail


def _model(d: Path, layers: int = 2, shards: int = 2) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"num_hidden_layers": layers}))
    weight_map, total = {}, 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {f"model.layers.{i}.w": torch.zeros(4, 4) for i in range(layers) if i % shards == s}
        save_file(tensors, str(d / name))
        weight_map.update({k: name for k in tensors})
        total += sum(t.numel() * 4 for t in tensors.values())
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                 "weight_map": weight_map}))
    return d


def test_model_weights_are_checked_against_their_index_headers_and_config(tmp_path):
    good = _model(tmp_path / "good")
    assert check_model_dir(good) == ("ok", "2 safetensors files, 0.00 GB of tensors, 2 layers as config.json says")
    cut = _model(tmp_path / "cut")
    shard = cut / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])  # a copy that stopped early
    assert check_model_dir(cut)[0] == "fail" and "cut short" in check_model_dir(cut)[1]
    gone = _model(tmp_path / "gone")
    (gone / "model-00001-of-00002.safetensors").unlink()
    assert "not there" in check_model_dir(gone)[1]
    other = _model(tmp_path / "other")
    (other / "config.json").write_text(json.dumps({"num_hidden_layers": 3}))
    assert "says 3 layers, the weights hold 2" in check_model_dir(other)[1]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{}")
    (tmp_path / "junk" / "model.safetensors").write_bytes(b"\xff" * 16)
    assert check_model_dir(tmp_path / "junk")[0] == "fail"


@pytest.mark.parametrize("start, status", [(100.0, "ok"), (800.0, "warn"), (1000.0, "fail")])
def test_the_measured_engine_start_is_held_against_the_serve_limit(tmp_path, start, status):
    summary = tmp_path / "kernel_summary.json"
    summary.write_text(json.dumps({"engine_start_s": start}))
    cfg = ShipConfig.load(ROOT / "configs" / "ship.toml", {"user": "alice",
                                                           "preflight.engine_summary": str(summary)})
    assert pf.check_engine_start(cfg).status == status
    assert pf.check_engine_start(replace(cfg, preflight=replace(cfg.preflight, engine_summary=""))).status == "skip"


def test_preflight_over_a_build_names_every_row_per_kernel(tmp_path):
    cfg = ShipConfig.load(ROOT / "configs" / "ship.toml", {"user": "alice", "preflight.model_dir": str(
        _model(tmp_path / "m"))})
    checks = pf.preflight(ROOT, cfg, build_all(ROOT, cfg, tmp_path / "b", wheels=False))
    rows = {c.what: c.status for c in checks}
    assert rows["submission: model weights"] == "ok" and rows["wheelhouse"] == "skip"
    assert set(rows) >= {"submission: inputs", "submission: gateway contract", "engine start"}
    assert "status" in pf.table(checks).splitlines()[0]


@pytest.mark.slow
def test_the_kernel_file_runs_under_the_competitions_kaggle_evaluation(tmp_path):
    """The gateway row: kernels/submission.py driven by the kaggle_evaluation of a competition folder (here the
    stand-in laid out as the real one ships), every row answered in range."""
    data = lay_out_competition(tmp_path / "data", [{"id": "a1", "problem": "What is $6 \\times 7$?"},
                                                   {"id": "a2", "problem": "What is $2+3$?"}])
    cfg = ShipConfig.load(ROOT / "configs" / "ship.toml", {"user": "alice", "preflight.competition_data": str(data),
                                                           "preflight.gateway_time_s": 240.0})
    got = pf.check_gateway(ROOT, cfg, SHIPPED, ROOT / "kernels" / "submission.py")
    assert got.status == "ok", got.detail
    assert "2 rows answered through kaggle_evaluation.aimo_3_inference_server" in got.detail
    (data / "test.csv").unlink()
    assert pf.check_gateway(ROOT, cfg, SHIPPED, ROOT / "kernels" / "submission.py").status == "fail"
