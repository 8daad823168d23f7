"""Inputs checked before anything is pushed, and again by the notebook where it runs."""

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from aimokit.config import KernelConfig
from aimokit.kaggle.build import BuildError, build_all
from aimokit.kaggle.config import KernelEntry, ShipConfig, WheelsConfig
from aimokit.kaggle.inputs import InputError, check_inputs, model_mount, mounts
from aimokit.kaggle.metadata import KernelSpec, MetadataError

from layout import ROOT


def _ship(tmp_path, **kernel):
    return ShipConfig(user="alice", kernels=[KernelEntry(**kernel)], wheels=WheelsConfig(requirements=[], image=""))


def test_a_model_no_source_provides_is_a_build_error_naming_it(tmp_path):
    with pytest.raises(BuildError) as e:
        build_all(ROOT, _ship(tmp_path), tmp_path / "build", wheels=False)
    msg = str(e.value)
    assert "engine.model = '$AIMOKIT_INPUT/deepseek-math/deepseek-math-7b-rl'" in msg
    assert "/kaggle/input/deepseek-math" in msg and "dataset_sources" in msg and "model_sources" in msg


def test_attached_sources_satisfy_the_check(tmp_path):
    built = build_all(ROOT, _ship(tmp_path, dataset_sources=["deepseek-math"]), tmp_path / "build", wheels=False)
    meta = json.loads((built["kernels"][0] / "kernel-metadata.json").read_text())
    assert "alice/deepseek-math" in meta["dataset_sources"]
    cfg = KernelConfig.load(ROOT / "configs" / "aimo3.toml", {"engine.model": "$AIMOKIT_INPUT/gpt-oss-120b/transformers/default/2"})
    have = mounts([], "ai-mathematical-olympiad-progress-prize-3", ["openai/gpt-oss-120b/transformers/default/2"])
    assert check_inputs(cfg, have, "x") == ["$AIMOKIT_INPUT/ai-mathematical-olympiad-progress-prize-3",
                                            "$AIMOKIT_INPUT/gpt-oss-120b/transformers/default/2"]
    with pytest.raises(InputError, match="gpt-oss-120b"):
        check_inputs(cfg, mounts([], "ai-mathematical-olympiad-progress-prize-3", []), "x")


def test_model_sources_are_checked_and_unknown_shapes_only_warn(caplog):
    assert model_mount("google/gemma/pytorch/7b/1") == "gemma/pytorch/7b/1"
    spec = KernelSpec(id="alice/aimokit-submission", title="aimokit submission", code_file="s.ipynb",
                      model_sources=["openai/gpt-oss-120b"])
    with pytest.raises(MetadataError, match="owner/model/framework/variation/version"):
        spec.metadata()
    spec.model_sources, spec.machine_shape = [], "NvidiaB200"
    with caplog.at_level(logging.WARNING):
        assert spec.metadata()["machine_shape"] == "NvidiaB200"
    assert "not one the kaggle client documents" in caplog.text
    spec.machine_shape = "NvidiaRtxPro6000"
    assert spec.metadata()["machine_shape"] == "NvidiaRtxPro6000"


def test_the_notebook_setup_cell_fails_fast_with_a_listing_when_an_input_is_missing(tmp_path):
    built = build_all(ROOT, _ship(tmp_path, dataset_sources=["deepseek-math"]), tmp_path / "build", wheels=False)
    nb = json.loads(next(built["kernels"][0].glob("*.ipynb")).read_text())
    setup = "".join(nb["cells"][1]["source"])
    inp = tmp_path / "input"
    import shutil

    shutil.copytree(built["datasets"]["source"], inp / "aimokit-source")
    (inp / "ai-mathematical-olympiad-progress-prize-3").mkdir()  # the competition, but no model
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMOKIT_")}
    env["AIMOKIT_INPUT"] = str(inp)
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", setup], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and time.monotonic() - t < 60
    assert "inputs missing" in proc.stderr and "kaggle:datasets/alice/deepseek-math" in proc.stderr
    assert "aimokit-source/" in proc.stderr and "ai-mathematical-olympiad-progress-prize-3/" in proc.stderr  # listed
    assert "wheels" not in proc.stdout  # nothing installed before the inputs were checked
    (inp / "deepseek-math" / "deepseek-math-7b-rl").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-c", setup], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # gpt-oss's vocabulary file, brought by a dataset, is checked and pointed at for openai-harmony offline
    from aimokit import vocab

    vocab.ship(inp / "o200k")
    check = setup + "\nprint('VOCAB', os.environ.get('TIKTOKEN_ENCODINGS_BASE'))"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and f"VOCAB {inp / 'o200k'}" in proc.stdout, proc.stderr
    # ... and a damaged one stops the first cell, naming the fix
    with open(inp / "o200k" / vocab.FILE, "r+b") as f:
        f.seek(100)
        f.write(b"X")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "not tiktoken's" in proc.stderr and "rebuild" in proc.stderr


def test_a_vllm_kernel_without_vllm_fails_in_the_first_cell_with_the_reason(tmp_path):
    """`push --no-wheels` means the image has vLLM: the first cell checks, instead of hours of fallback."""
    import shutil

    bare = shutil.which("python3")
    probe = subprocess.run([bare, "-c", "import importlib.util as u; print(u.find_spec('vllm') is None)"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        pytest.fail(f"{bare} has vLLM: this test needs an interpreter without it")
    built = build_all(ROOT, _ship(tmp_path, dataset_sources=["deepseek-math"]), tmp_path / "build", wheels=False)
    setup = "".join(json.loads(next(built["kernels"][0].glob("*.ipynb")).read_text())["cells"][1]["source"])
    inp = tmp_path / "input"
    shutil.copytree(built["datasets"]["source"], inp / "aimokit-source")
    (inp / "ai-mathematical-olympiad-progress-prize-3").mkdir()
    (inp / "deepseek-math" / "deepseek-math-7b-rl").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMOKIT_")}
    env["AIMOKIT_INPUT"] = str(inp)
    proc = subprocess.run([bare, "-c", setup], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "runs vLLM" in proc.stderr and "no wheels dataset is attached" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", setup], capture_output=True, text=True, env=env, timeout=60)
    assert "runs vLLM" not in proc.stderr  # where vLLM is installed the check passes (later checks may not)


def test_source_rules_are_the_clients_and_kaggles_not_stricter():
    from aimokit.kaggle.metadata import check_ref

    assert check_ref("someone/qwen3", "dataset source") == ("someone", "qwen3")  # 5 characters: Kaggle takes it
    assert check_ref("someone/abc/3", "dataset source") == ("someone", "abc")  # a pinned version
    assert check_ref("alice/solve", "kernel") == ("alice", "solve")
    with pytest.raises(MetadataError, match="3 to 50"):
        check_ref("someone/ab", "dataset source")
    with pytest.raises(MetadataError, match="must be a number"):
        check_ref("someone/abc/latest", "dataset source")
    with pytest.raises(MetadataError, match="6 to 50"):
        check_ref("alice/qwen3", "dataset")  # one we create: the client's own 6-50
    with pytest.raises(InputError, match="version 'latest' must be a number"):
        model_mount("openai/gpt-oss-120b/transformers/default/latest")


LAYOUTS = {  # where each input is mounted: Kaggle's 2026 tree, the flat one, and one the kit does not know
    "2026": ("competitions/ai-mathematical-olympiad-progress-prize-3", "datasets/alice/deepseek-math",
             "the datasets/ layout"),
    "flat": ("ai-mathematical-olympiad-progress-prize-3", "deepseek-math", "the flat layout"),
    "other": ("mirror/ai-mathematical-olympiad-progress-prize-3", "mnt/x/deepseek-math", "a search of"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_first_cell_finds_each_input_by_its_source_under_every_layout_and_says_where(tmp_path, layout):
    import shutil

    built = build_all(ROOT, _ship(tmp_path, dataset_sources=["deepseek-math"]), tmp_path / "build", wheels=False)
    shipped = (built["datasets"]["source"] / "submission.toml").read_text()
    assert 'model = "kaggle:datasets/alice/deepseek-math/deepseek-math-7b-rl"' in shipped  # named by its source
    setup = "".join(json.loads(next(built["kernels"][0].glob("*.ipynb")).read_text())["cells"][1]["source"])
    comp, data, how = LAYOUTS[layout]
    inp = tmp_path / "input"
    shutil.copytree(built["datasets"]["source"], inp / "datasets" / "alice" / "aimokit-source")
    (inp / comp).mkdir(parents=True)
    (inp / data / "deepseek-math-7b-rl").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMOKIT_")}
    env["AIMOKIT_INPUT"] = str(inp)
    proc = subprocess.run([sys.executable, "-c", setup], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("input kaggle:datasets/alice/deepseek-math"))
    assert str(inp / data / "deepseek-math-7b-rl") in line and how in line
    # and the kernel resolves the same config the same way where it runs
    from aimokit.config import KernelConfig, expand_paths

    cfg = expand_paths(KernelConfig.load(inp / "datasets" / "alice" / "aimokit-source" / "submission.toml"),
                       {"AIMOKIT_INPUT": str(inp)})
    assert cfg.engine.model == str(inp / data / "deepseek-math-7b-rl")
    assert cfg.competition.data_dir == str(inp / comp)
