import tomllib

import pytest

from aimokit.config import ConfigError, SolveConfig, load_config, to_toml

from conftest import ROOT


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
