"""`build.py build`: dataset and kernel folders, offline."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from aimokit.adapters import AdapterError
from aimokit.kaggle.build import BuildError, build_all, content_hash
from aimokit.config import ConfigError
from aimokit.kaggle.config import ShipConfig

from layout import ROOT
from wheels import tiny_wheel


def _cfg(tmp_path, **dotted):
    """The checkout's own ship config, as user alice, with `section.key` overrides."""
    return ShipConfig.load(ROOT / "configs" / "ship.toml", {"user": "alice", **dotted})


def _with_adapters(cfg: ShipConfig, tmp_path, *adapters) -> ShipConfig:
    """One kernel per adapter, each config naming its adapter as engine.lora: how adapters get shipped."""
    kernels = []
    for i, adapter in enumerate(adapters):
        config = tmp_path / f"kernel{i}.toml"
        config.write_text(f'[engine]\nlora = "{adapter}"\n')
        kernels.append(replace(cfg.kernels[0], name=f"k{i}", slug=f"k{i}", config=str(config)))
    return replace(cfg, kernels=kernels)


def test_build_writes_every_dataset_and_kernel_folder(tmp_path):
    cfg = _cfg(tmp_path, **{"wheels.requirements": ["tinypkg==0.1"], "wheels.find_links": [str(tiny_wheel(tmp_path))],
                            "wheels.no_index": True})
    built = build_all(ROOT, cfg, tmp_path / "build")
    src = built["datasets"]["source"]
    meta = json.loads((src / "dataset-metadata.json").read_text())
    assert meta["id"] == "alice/aimokit-source" and meta["licenses"] == [{"name": "apache-2.0"}]
    assert meta["description"] == (ROOT / "datasets" / "source" / "README.md").read_text()  # what Kaggle shows
    assert (src / "src" / "aimokit" / "solver.py").is_file() and (src / "submission.toml").is_file()
    assert not list(src.rglob("__pycache__"))
    wheels = built["datasets"]["wheels"]
    assert [p.name for p in wheels.glob("*.whl")] == ["tinypkg-0.1-py3-none-any.whl"]
    kdir = built["kernels"][0]
    kmeta = json.loads((kdir / "kernel-metadata.json").read_text())
    assert kmeta["dataset_sources"] == ["alice/aimokit-source", "alice/aimokit-wheels", "alice/deepseek-math"]
    assert kmeta["competition_sources"] == ["ai-mathematical-olympiad-progress-prize-3"]
    assert kmeta["enable_internet"] is False and (kdir / kmeta["code_file"]).is_file()
    h = content_hash(src)
    build_all(ROOT, cfg, tmp_path / "build", wheels=False)
    assert content_hash(src) == h  # same checkout, same content: nothing to push again


def test_adapters_are_validated_before_bundling(tmp_path):
    bad = tmp_path / "adapter"
    bad.mkdir()
    (bad / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["lm_head"]}))
    (bad / "adapter_model.safetensors").write_bytes(b"")
    cfg = _with_adapters(_cfg(tmp_path), tmp_path, bad)
    with pytest.raises(AdapterError, match="not served by vLLM LoRA"):
        build_all(ROOT, cfg, tmp_path / "build", wheels=False)


def test_oversized_file_and_missing_user_are_clear_errors(tmp_path):
    cfg = _cfg(tmp_path, max_file_bytes=1000)
    with pytest.raises(BuildError, match="over the 1000-byte file limit"):
        build_all(ROOT, cfg, tmp_path / "build", wheels=False)
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "build", "--no-wheels", "--out",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2 and "set user = " in proc.stderr and "your-kaggle-user" in proc.stderr


def test_the_adapters_shipped_are_the_ones_the_kernels_name(tmp_path):
    """Declared once: a kernel config's engine.lora (relative to that config) ships, and is rewritten to the mount."""
    from aimokit.kaggle.build import build_source

    adapter = tmp_path / "runs" / "dpo-adapter"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "k.toml").write_text('[engine]\nlora = "../runs/dpo-adapter"\n')
    cfg = _cfg(tmp_path)
    cfg = replace(cfg, kernels=[replace(cfg.kernels[0], config=str(tmp_path / "configs" / "k.toml"))])
    assert cfg.adapters_to_ship(ROOT) == {"dpo-adapter": adapter.resolve()}
    assert _cfg(tmp_path).adapters_to_ship(ROOT) == {}  # configs/aimo3.toml names none
    shipped = (build_source(ROOT, cfg, tmp_path / "build") / "submission.toml").read_text()
    assert 'lora = "$AIMOKIT_ADAPTERS/dpo-adapter"' in shipped


def test_a_kernels_selector_ships_in_the_source_dataset_and_a_bad_one_stops_the_build(tmp_path):
    from aimokit import selector
    from aimokit.candidates import Vote
    from aimokit.kaggle.build import BuildError, build_source

    (tmp_path / "configs").mkdir()
    sel = selector.fit([(1, [Vote(1), Vote(1), Vote(2)]), (3, [Vote(3), Vote(4), Vote(4)])])
    selector.save(sel, tmp_path / "sel.json")
    (tmp_path / "configs" / "k.toml").write_text('[solver]\nvote = "learned"\nselector = "../sel.json"\n')
    cfg = _cfg(tmp_path)
    cfg = replace(cfg, kernels=[replace(cfg.kernels[0], config=str(tmp_path / "configs" / "k.toml"))])
    d = build_source(ROOT, cfg, tmp_path / "build")
    assert 'selector = "$AIMOKIT_SOURCE/selectors/submission.json"' in (d / "submission.toml").read_text()
    assert selector.load(d / "selectors" / "submission.json") == sel
    (tmp_path / "sel.json").write_text("{}")
    with pytest.raises(BuildError, match="kernel submission: .*not a selector file"):
        build_source(ROOT, cfg, tmp_path / "build2")
    old = tmp_path / "old.toml"  # the old way of listing them is refused with the fix
    old.write_text((ROOT / "configs" / "ship.toml").read_text().replace("[adapters]", "[adapters]\npaths = []"))
    with pytest.raises(ConfigError, match="paths is gone.*engine.lora"):
        ShipConfig.load(old, {"user": "alice"})


def test_ship_paths_are_relative_to_the_ship_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wherever the build starts from
    cfg = _cfg(tmp_path)
    assert cfg.kernels[0].file == str(ROOT / "kernels" / "submission.py")
    assert cfg.kernels[0].config == str(ROOT / "configs" / "aimo3.toml")
    assert cfg.wheels.image == str(ROOT / "datasets" / "wheels" / "image-lent-h100.txt")


def test_each_dataset_is_read_from_its_folder_under_datasets(tmp_path):
    """datasets/<name>/ holds the README and what goes in; a broken spec names the file and the fix."""
    import shutil

    from aimokit.kaggle.build import build_source

    root = tmp_path / "checkout"
    for rel in ("src/aimokit", "kernels", "configs", "datasets"):
        shutil.copytree(ROOT / rel, root / rel)
    (root / "notes.txt").write_text("shipped because the spec says so\n")
    spec = root / "datasets" / "source" / "dataset.toml"
    spec.write_text('include = ["src/aimokit", "kernels", "notes.txt"]\n')
    cfg = _cfg(tmp_path)
    d = build_source(root, cfg, tmp_path / "build")
    assert (d / "notes.txt").is_file() and (d / "kernels" / "submission.py").is_file()
    spec.write_text('include = ["src/aimokit", "no-such-dir"]\n')
    with pytest.raises(BuildError, match="no-such-dir"):
        build_source(root, cfg, tmp_path / "build")
    spec.write_text('include = ["src/aimokit"]\nexclude = ["x"]\n')
    with pytest.raises(BuildError, match="unknown keys \\['exclude'\\]"):
        build_source(root, cfg, tmp_path / "build")
    (root / "datasets" / "source" / "README.md").unlink()
    with pytest.raises(BuildError, match="README.md is missing"):
        build_source(root, cfg, tmp_path / "build")


def test_two_adapters_of_one_name_are_refused_naming_both(tmp_path):
    a, b = tmp_path / "run1" / "adapter", tmp_path / "run2" / "adapter"
    cfg = _with_adapters(_cfg(tmp_path), tmp_path, a, b)
    with pytest.raises(ConfigError, match="would both ship as 'adapter'") as e:
        cfg.adapters_to_ship(ROOT)
    assert str(a) in str(e.value) and str(b) in str(e.value)
    assert _with_adapters(_cfg(tmp_path), tmp_path, a, a).adapters_to_ship(ROOT) == {"adapter": a}  # one, used twice


@pytest.mark.parametrize("ship", ["ship.toml", "ship-gpt-oss.toml", "ship-rehearsal.toml"])
def test_every_shipped_recipe_builds_with_its_inputs_attached(ship, tmp_path, request):
    """Each ship config builds its kernels: configs valid, the model attached where the config reads it."""
    cfg = ShipConfig.load(ROOT / "configs" / ship, {"user": "alice"})
    if ship == "ship-rehearsal.toml":  # its LoRA is made by benchmarks/gpu_rehearsal.py prepare: a test one instead
        from aimokit.config import KernelConfig, to_toml

        kernel = tmp_path / "rehearsal-gpu.toml"
        kernel.write_text(to_toml(KernelConfig.load(cfg.kernels[0].config,
                                                    {"engine.lora": str(request.getfixturevalue("lora_adapter"))})))
        cfg = replace(cfg, kernels=[replace(cfg.kernels[0], config=str(kernel))])
    built = build_all(ROOT, cfg, tmp_path / "build", wheels=False)
    meta = json.loads((built["kernels"][0] / "kernel-metadata.json").read_text())
    assert meta["competition_sources"] == ["ai-mathematical-olympiad-progress-prize-3"]
    if ship == "ship-gpt-oss.toml":
        assert meta["model_sources"] == ["openai/gpt-oss-120b/transformers/default/2"]
        shipped = (built["datasets"]["source"] / "gpt-oss.toml").read_text()
        assert 'protocol = "harmony"' in shipped and 'vote = "entropy"' in shipped and "sessions = true" in shipped


def test_a_harmony_recipe_ships_gpt_oss_vocabulary_and_its_notebook_checks_it(tmp_path, monkeypatch):
    """openai-harmony (vLLM's wheelhouse brings the official wheel) reads o200k_base.tiktoken offline from
    TIKTOKEN_ENCODINGS_BASE: the wheels dataset of a harmony recipe carries the file, tiktoken's hash checked."""
    import hashlib

    from aimokit import vocab
    from aimokit.kaggle import build as build_mod

    monkeypatch.setattr(build_mod, "build_wheelhouse", lambda *a, **k: {"shipped": []})  # the wheels themselves: elsewhere
    gpt_oss = ShipConfig.load(ROOT / "configs" / "ship-gpt-oss.toml", {"user": "alice"})
    d = build_mod.build_wheels(ROOT, gpt_oss, tmp_path / "build")
    assert hashlib.sha256((d / vocab.FILE).read_bytes()).hexdigest() == vocab.SHA256
    assert not (build_mod.build_wheels(ROOT, _cfg(tmp_path), tmp_path / "b2") / vocab.FILE).exists()  # fenced
    built = build_all(ROOT, gpt_oss, tmp_path / "b3", wheels=False)
    setup = "".join(json.loads(next(built["kernels"][0].glob("*.ipynb")).read_text())["cells"][1]["source"])
    assert vocab.SHA256 in setup and "NEEDS_VOCAB = True" in setup  # checked, and missed aloud under harmony


def test_the_wheelhouse_is_built_for_the_measured_image_not_an_assumed_one(tmp_path, caplog, monkeypatch):
    import logging

    from aimokit.kaggle import build as build_mod

    monkeypatch.setattr(build_mod, "build_wheelhouse", lambda *a, **k: {"shipped": []})
    cfg = _cfg(tmp_path)  # datasets/wheels/image-lent-h100.txt: measured on the lent GPU machine, not on Kaggle
    with caplog.at_level(logging.WARNING):
        build_mod.build_wheels(ROOT, cfg, tmp_path / "b")
    assert "recorded off Kaggle" in caplog.text
    wrong = replace(cfg, wheels=replace(cfg.wheels, python_version="3.11"))
    with pytest.raises(BuildError, match="python_version = '3.11' but the probed image runs Python 3.12.3"):
        build_mod.build_wheels(ROOT, wrong, tmp_path / "c")


def test_empty_requirements_are_what_the_kernels_backends_and_the_kit_need(tmp_path):
    """No backend's pin is written in the ship config's defaults: each backend declares its own."""
    import tomllib

    from aimokit.engine.vllm import VLLMEngine

    kit = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    cfg = _cfg(tmp_path, **{"wheels.requirements": []})
    assert cfg.wheel_requirements(ROOT) == [*kit, *VLLMEngine.requirements]  # the shipped kernels run vLLM
    hf = tmp_path / "hf.toml"
    hf.write_text('[engine]\nbackend = "transformers"\n')
    only_hf = replace(cfg, kernels=[replace(cfg.kernels[0], config=str(hf))])
    assert only_hf.wheel_requirements(ROOT) == kit  # the image has transformers: nothing more ships
    hf.write_text('[engine]\nfallback = "transformers"\n')  # vLLM, falling back: vLLM's pin once, nothing more
    assert only_hf.wheel_requirements(ROOT) == [*kit, *VLLMEngine.requirements]
    assert _cfg(tmp_path, **{"wheels.requirements": ["x==1"]}).wheel_requirements(ROOT) == ["x==1"]  # set: as set
    with pytest.raises(ConfigError, match="pyproject.toml, which is missing"):
        cfg.wheel_requirements(tmp_path)


def _saved_cache(folder, device="NVIDIA H100 80GB HBM3"):
    from aimokit.engine.compile_cache import MANIFEST

    (folder / "vllm/torch_compile_cache/h1/rank_0_0").mkdir(parents=True)
    (folder / "vllm/torch_compile_cache/h1/rank_0_0/model").write_bytes(b"compiled")
    (folder / MANIFEST).write_text(json.dumps({"identity": {"vllm": "0.26.0", "torch": "2.11.0", "device": device,
                                                            "capability": "9.0"}}))
    return folder


def test_a_kernels_compile_cache_ships_as_a_dataset_its_config_and_notebook_find(tmp_path):
    from aimokit.kaggle.inputs import required_paths

    cache = _saved_cache(tmp_path / "runs" / "kaggle" / "aimokit-compile-cache")
    cfg = _cfg(tmp_path)
    cfg = replace(cfg, kernels=[replace(cfg.kernels[0], compile_cache=str(cache))])
    built = build_all(ROOT, cfg, tmp_path / "build", wheels=False)
    d = built["datasets"]["compile-cache"]
    assert json.loads((d / "dataset-metadata.json").read_text())["id"] == "alice/aimokit-compile-cache"
    assert (d / "submission" / "vllm/torch_compile_cache/h1/rank_0_0/model").read_bytes() == b"compiled"
    assert json.loads((d / "aimokit-compile-caches.json").read_text())["submission"]["identity"]["vllm"] == "0.26.0"
    kmeta = json.loads((built["kernels"][0] / "kernel-metadata.json").read_text())
    assert "alice/aimokit-compile-cache" in kmeta["dataset_sources"]
    from aimokit.config import KernelConfig

    shipped = KernelConfig.load(built["datasets"]["source"] / "submission.toml")
    assert shipped.engine.section("vllm").compile_cache == "$AIMOKIT_COMPILE_CACHE/submission"
    assert "$AIMOKIT_COMPILE_CACHE/submission" in required_paths(shipped)  # the first cell checks it is there
    nb = next(built["kernels"][0].glob("*.ipynb")).read_text()
    assert "aimokit-compile-caches.json" in nb and "AIMOKIT_COMPILE_CACHE" in nb


def test_a_compile_cache_that_cannot_ship_stops_the_build(tmp_path):
    cfg = _cfg(tmp_path)
    (tmp_path / "half").mkdir()
    half = replace(cfg, kernels=[replace(cfg.kernels[0], compile_cache=str(tmp_path / "half"))])
    with pytest.raises(BuildError, match="kernel submission: compile_cache: .*no aimokit-compile-cache.json"):
        build_all(ROOT, half, tmp_path / "build", wheels=False)
    local = tmp_path / "k.toml"  # a kernel config naming a local cache: Kaggle would not have it
    local.write_text(f'[engine.vllm]\ncompile_cache = "{tmp_path / "half"}"\n')
    with pytest.raises(BuildError, match="local folder.*\\[\\[kernels\\]\\] compile_cache"):
        build_all(ROOT, replace(cfg, kernels=[replace(cfg.kernels[0], config=str(local))]), tmp_path / "b2",
                  wheels=False)
    hf = tmp_path / "hf.toml"
    hf.write_text('[engine]\nbackend = "transformers"\n')
    cache = _saved_cache(tmp_path / "cache")
    with pytest.raises(BuildError, match="compile_cache is vLLM's"):
        build_all(ROOT, replace(cfg, kernels=[replace(cfg.kernels[0], config=str(hf), compile_cache=str(cache))]),
                  tmp_path / "b3", wheels=False)


def test_a_ship_files_compile_cache_is_relative_to_it(tmp_path):
    ship = tmp_path / "ship.toml"
    ship.write_text('user = "alice"\n[[kernels]]\nconfig = "k.toml"\ncompile_cache = "runs/cache"\n')
    assert ShipConfig.load(ship).kernels[0].compile_cache == str(tmp_path / "runs" / "cache")
