"""`build.py build`: dataset and kernel folders, offline."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from aimokit.adapters import AdapterError
from aimokit.kaggle.build import BuildError, build_all, content_hash
from aimokit.kaggle.config import ShipConfig

from layout import ROOT
from wheels import tiny_wheel


def _cfg(tmp_path, **kw):
    path = tmp_path / "ship.toml"
    path.write_text((ROOT / "configs" / "ship.toml").read_text().replace('"your-kaggle-user"', '"alice"'))
    cfg = ShipConfig.load(path)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_build_writes_every_dataset_and_kernel_folder(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.wheels.requirements = ["tinypkg==0.1"]
    cfg.wheels.find_links = [str(tiny_wheel(tmp_path))]
    cfg.wheels.no_index = True
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
    cfg = _cfg(tmp_path)
    cfg.adapters.paths = [str(bad)]
    with pytest.raises(AdapterError, match="not served by vLLM LoRA"):
        build_all(ROOT, cfg, tmp_path / "build", wheels=False)


def test_oversized_file_and_missing_user_are_clear_errors(tmp_path):
    cfg = _cfg(tmp_path, max_file_bytes=1000)
    with pytest.raises(BuildError, match="over the 1000-byte file limit"):
        build_all(ROOT, cfg, tmp_path / "build", wheels=False)
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "build", "--no-wheels", "--out",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2 and "set user = " in proc.stderr and "your-kaggle-user" in proc.stderr


def test_kernel_adapter_path_is_rewritten_to_the_mounted_dataset(tmp_path):
    from aimokit.kaggle.build import shipped_lora_path

    cfg = _cfg(tmp_path)
    cfg.adapters.paths = [str(tmp_path / "runs" / "dpo-adapter")]
    assert shipped_lora_path(str(tmp_path / "runs" / "dpo-adapter"), cfg, "k.toml") == "$AIMOKIT_ADAPTERS/dpo-adapter"
    assert shipped_lora_path("", cfg, "k.toml") == ""
    with pytest.raises(BuildError, match="engine.lora = .*other.* is not shipped; add it to \\[adapters\\] paths"):
        shipped_lora_path(str(tmp_path / "other"), cfg, "k.toml")


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
    from aimokit.kaggle.build import build_adapters

    cfg = _cfg(tmp_path)
    a, b = tmp_path / "run1" / "adapter", tmp_path / "run2" / "adapter"
    cfg = replace(cfg, adapters=replace(cfg.adapters, paths=[str(a), str(b)]))
    with pytest.raises(BuildError, match="would both ship as 'adapter'") as e:
        build_adapters(ROOT, cfg, tmp_path / "build")
    assert str(a) in str(e.value) and str(b) in str(e.value)
