import tomllib

import pytest

from aimokit.config import ConfigError, KernelConfig, to_toml

from layout import ROOT


@pytest.mark.parametrize("name", ["dry-run", "aimo2", "aimo3", "aimo3-qwen3", "aimo3-gpt-oss-120b", "rehearsal-gpu"])
def test_shipped_configs_load_and_round_trip(name):
    cfg = KernelConfig.load(ROOT / "configs" / f"{name}.toml")
    assert KernelConfig.from_dict(tomllib.loads(to_toml(cfg))) == cfg


@pytest.mark.parametrize("name", ["train-dpo", "train-sft", "train-grpo"])
def test_shipped_train_configs_load(name):
    from aimokit.train import TrainConfig

    cfg = TrainConfig.load(ROOT / "configs" / f"{name}.toml")
    assert cfg.method == name.removeprefix("train-")


@pytest.mark.parametrize("name", ["cpu-2", "fsdp2", "zero3"])
def test_shipped_accelerate_configs_name_a_known_distributed_type(name):
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "accelerate" / f"{name}.yaml").read_text())
    assert cfg["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED") and cfg["num_processes"] >= 2
    if name == "fsdp2":
        assert cfg["fsdp_config"]["fsdp_version"] == 2
    if name == "zero3":
        assert cfg["deepspeed_config"]["zero_stage"] == 3


def test_aimo3_has_no_modulo_and_a_wider_range():
    cfg = KernelConfig.load(ROOT / "configs" / "aimo3.toml")
    assert cfg.competition.modulo == 0 and cfg.competition.answer_max == 99999


def test_unknown_keys_and_bad_types_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting.*solver.sample'"):
        KernelConfig.from_dict({"solver": {"sample": 4}})
    with pytest.raises(ConfigError, match="solver.samples: expected int"):
        KernelConfig.from_dict({"solver": {"samples": "many"}})
    with pytest.raises(ConfigError, match="min_samples <= samples"):
        KernelConfig.from_dict({"solver": {"samples": 2, "min_samples": 3}})
    with pytest.raises(ConfigError, match="engine.start_timeout_s = 0.0: it must be > 0"):
        KernelConfig.from_dict({"engine": {"start_timeout_s": 0}})
    with pytest.raises(ConfigError, match="engine.vllm.max_lora_rank = 24: vLLM accepts 1, 8, 16.*or 0 for the adapter's own"):
        KernelConfig.from_dict({"engine": {"vllm": {"max_lora_rank": 24}}})
    bad = tmp_path / "c.toml"
    bad.write_text("[solver\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        KernelConfig.load(bad)


def test_dotted_overrides():
    cfg = KernelConfig.load(None, {"solver.samples": 3, "competition.time_limit_s": 10})
    assert cfg.solver.samples == 3 and cfg.competition.time_limit_s == 10.0
    with pytest.raises(ConfigError, match="unknown setting.*'solver.nope'; known in \\[solver\\]: answer_region, early_stop"):
        KernelConfig.load(None, {"solver.nope": 1})


@pytest.mark.parametrize("job", ["kernel", "eval", "dpo-data", "train", "ship"])
def test_every_job_loads_one_way_and_no_config_exists_unchecked(job):
    """Job.load(path, overrides) for each; a bad value fails at construction, however the object is built."""
    import dataclasses

    from aimokit.settings_doc import jobs

    cls = jobs()[job]
    base = {"user": "alice"} if job == "ship" else {}
    cfg = cls.load(None, base)
    with pytest.raises(dataclasses.FrozenInstanceError):  # never mutated: a change is a copy
        setattr(cfg, dataclasses.fields(cfg)[0].name, None)
    bad = {"kernel": {"solver.samples": 0}, "eval": {"samples": 0}, "dpo-data": {"val_fraction": 1.5},
           "train": {"method": "ppo"}, "ship": {"license": "MIT-ish"}}[job]
    with pytest.raises(ConfigError):
        cls.load(None, {**base, **bad})
    key, value = next(iter(bad.items()))
    if "." not in key:  # dataclasses.replace runs the same checks
        with pytest.raises(ConfigError):
            dataclasses.replace(cfg, **{key: value})
    assert cls.from_dict(tomllib.loads(to_toml(cfg))) == cfg  # what to_toml writes reads back the same


def test_every_setting_has_help_and_the_settings_page_is_current():
    from aimokit.settings_doc import jobs, markdown

    for cls in jobs().values():
        missing = [name for name, _, _, help_ in cls.settings() if not help_.strip()]
        assert not missing, f"{cls.__name__}: settings without help {missing}"
    assert (ROOT / "docs" / "settings.md").read_text() == markdown() + "\n", \
        "docs/settings.md is stale: python build.py settings --markdown > docs/settings.md"


def test_a_model_or_adapter_named_in_a_kernel_config_is_relative_to_that_file(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "k.toml"
    path.write_text('[engine]\nmodel = "../models/m"\nlora = "$AIMOKIT_ADAPTERS/a"\n')
    monkeypatch.chdir(ROOT)
    cfg = KernelConfig.load(path, {"engine.lora": "runs/x"})  # an override is where you typed it: left as given
    assert cfg.engine.model == str(tmp_path / "models" / "m") and cfg.engine.lora == "runs/x"
    assert KernelConfig.load(path).engine.lora == "$AIMOKIT_ADAPTERS/a"  # a mount path is left for the kernel


def test_shipped_paths_resolve_where_the_kernel_runs():
    from aimokit.config import ConfigError, expand_paths

    cfg = expand_paths(KernelConfig.load(ROOT / "configs" / "aimo3.toml"), env={})
    assert cfg.engine.model == "/kaggle/input/deepseek-math/deepseek-math-7b-rl"  # Kaggle's mount by default
    assert cfg.competition.data_dir == "/kaggle/input/ai-mathematical-olympiad-progress-prize-3"
    cfg = expand_paths(KernelConfig.load(ROOT / "configs" / "aimo3.toml", {"engine.lora": "$AIMOKIT_ADAPTERS/dpo"}),
                       env={"AIMOKIT_INPUT": "/tmp/in", "AIMOKIT_ADAPTERS": "/tmp/in/ad"})
    assert cfg.engine.model.startswith("/tmp/in/") and cfg.engine.lora == "/tmp/in/ad/dpo"
    with pytest.raises(ConfigError, match="AIMOKIT_ADAPTERS is not set; attach the adapters dataset"):
        expand_paths(KernelConfig.load(None, {"engine.lora": "${AIMOKIT_ADAPTERS}/dpo"}), env={})


def test_each_backend_owns_its_table_under_engine():
    """[engine.vllm] is read and checked by the class the vllm backend registers; the page of settings lists
    every registered backend's table, and a config writes and reads it back the same."""
    from aimokit.registry import BACKENDS

    cfg = KernelConfig.from_dict({"engine": {"max_num_seqs": 8, "vllm": {"kv_cache_dtype": "fp8"},
                                             "transformers": {"batch_size": 2}}})
    assert cfg.engine.section().kv_cache_dtype == "fp8" and cfg.engine.section("transformers").batch_size == 2
    assert type(cfg.engine.section()) is BACKENDS.get("vllm").Settings
    assert KernelConfig.from_dict(tomllib.loads(cfg.to_toml())) == cfg
    assert "[engine.vllm]" in cfg.to_toml() and "backends" not in cfg.to_toml()
    names = {name for name, *_ in KernelConfig.settings()}
    assert {f"engine.{b}" for b in BACKENDS.names()} <= {n.rsplit(".", 1)[0] for n in names}
    assert cfg.override({"engine.vllm.enforce_eager": True}).engine.section().enforce_eager is True
    with pytest.raises(ConfigError, match="unknown setting.*'engine.vllm.kv_dtype'"):
        KernelConfig.from_dict({"engine": {"vllm": {"kv_dtype": "fp8"}}})
    with pytest.raises(ConfigError, match="engine.vllm.gpu_memory_utilization must be in"):
        KernelConfig.from_dict({"engine": {"vllm": {"gpu_memory_utilization": 1.5}}})
    with pytest.raises(ConfigError, match="engine.transformers.batch_size must be >= 1"):
        KernelConfig.from_dict({"engine": {"transformers": {"batch_size": 0}}})


def test_a_setting_from_before_the_split_loads_where_it_now_lives_and_says_so(caplog):
    """Old files keep working: `[engine] gpu_memory_utilization = 0.5` is vLLM's, moved to [engine.vllm] with
    a message naming the new place; a key both places is refused rather than one silently winning."""
    with caplog.at_level("WARNING", logger="aimokit.config"):
        cfg = KernelConfig.from_dict({"engine": {"gpu_memory_utilization": 0.5, "extra": {"a": 1}}})
    assert cfg.engine.section().gpu_memory_utilization == 0.5 and cfg.engine.section().extra == {"a": 1}
    assert "engine.gpu_memory_utilization is now engine.vllm.gpu_memory_utilization" in caplog.text
    old = KernelConfig.load().override({"engine.kv_cache_dtype": "fp8"})  # an old dotted override, too
    assert old.engine.section().kv_cache_dtype == "fp8"
    moved = KernelConfig.from_dict({"engine": {"backend": "transformers", "batch_size": 3}})
    assert moved.engine.section().batch_size == 3  # the selected backend's table takes its key
    with pytest.raises(ConfigError, match="engine.enforce_eager is now engine.vllm.enforce_eager, and both are set"):
        KernelConfig.from_dict({"engine": {"enforce_eager": True, "vllm": {"enforce_eager": False}}})
    with pytest.raises(ConfigError, match="unknown setting.*'engine.nonsense'"):
        KernelConfig.from_dict({"engine": {"nonsense": 1}})
