import tomllib

import pytest

from aimokit.config import ConfigError, SolveConfig, load_config, to_toml

from layout import ROOT


@pytest.mark.parametrize("name", ["dry-run", "aimo2", "aimo3"])
def test_shipped_configs_load_and_round_trip(name):
    cfg = load_config(ROOT / "configs" / f"{name}.toml")
    assert SolveConfig.from_dict(tomllib.loads(to_toml(cfg))) == cfg


def test_aimo3_has_no_modulo_and_a_wider_range():
    cfg = load_config(ROOT / "configs" / "aimo3.toml")
    assert cfg.competition.modulo == 0 and cfg.competition.answer_max == 99999


def test_unknown_keys_and_bad_types_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting.*solver.sample'"):
        SolveConfig.from_dict({"solver": {"sample": 4}})
    with pytest.raises(ConfigError, match="solver.samples: expected int"):
        SolveConfig.from_dict({"solver": {"samples": "many"}})
    with pytest.raises(ConfigError, match="min_samples <= samples"):
        SolveConfig.from_dict({"solver": {"samples": 2, "min_samples": 3}})
    bad = tmp_path / "c.toml"
    bad.write_text("[solver\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_dotted_overrides():
    cfg = load_config(None, {"solver.samples": 3, "competition.time_limit_s": 10})
    assert cfg.solver.samples == 3 and cfg.competition.time_limit_s == 10.0
    with pytest.raises(ConfigError, match="unknown setting 'solver.nope'"):
        load_config(None, {"solver.nope": 1})


def test_shipped_paths_resolve_where_the_kernel_runs():
    from aimokit.config import ConfigError, expand_paths, load_config

    cfg = expand_paths(load_config(ROOT / "configs" / "aimo3.toml"), env={})
    assert cfg.engine.model == "/kaggle/input/deepseek-math/deepseek-math-7b-rl"  # Kaggle's mount by default
    assert cfg.competition.data_dir == "/kaggle/input/ai-mathematical-olympiad-progress-prize-3"
    cfg = expand_paths(load_config(ROOT / "configs" / "aimo3.toml", {"engine.lora": "$AIMOKIT_ADAPTERS/dpo"}),
                       env={"AIMOKIT_INPUT": "/tmp/in", "AIMOKIT_ADAPTERS": "/tmp/in/ad"})
    assert cfg.engine.model.startswith("/tmp/in/") and cfg.engine.lora == "/tmp/in/ad/dpo"
    with pytest.raises(ConfigError, match="AIMOKIT_ADAPTERS is not set; attach the adapters dataset"):
        expand_paths(load_config(None, {"engine.lora": "${AIMOKIT_ADAPTERS}/dpo"}), env={})
