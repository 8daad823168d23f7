"""Each training method's settings are its own: TRL's names in [dpo], [sft] and [grpo], checked before any
model loads; DPO's losses bind DPO only, so GRPO's own loss can be set."""

import logging

import pytest

from aimokit.config import ConfigError
from aimokit.train import TrainConfig, check_method_args


def test_dpos_losses_do_not_bind_grpo_and_grpos_own_loss_reaches_its_trl_config():
    cfg = TrainConfig(method="grpo", loss_type=["not-a-dpo-loss"], grpo={"loss_type": "dapo", "epsilon": 0.2})
    assert cfg.method_args() == {"loss_type": "dapo", "epsilon": 0.2}
    check_method_args(cfg)  # GRPOConfig has both
    with pytest.raises(ConfigError, match="loss_type"):
        TrainConfig(method="dpo", loss_type=["not-a-dpo-loss"])


def test_a_section_key_the_kit_passes_itself_or_trl_lacks_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"\[dpo\] sets \['beta'\], which the kit passes to TRL itself"):
        TrainConfig(method="dpo", dpo={"beta": 0.2})
    with pytest.raises(ConfigError, match=r"\[grpo\] sets \['epsilonn'\], which TRL .*GRPOConfig does not have"):
        check_method_args(TrainConfig(method="grpo", grpo={"epsilonn": 0.2}))
    assert TrainConfig(method="sft", dpo={"beta": 9}).method_args() == {}  # another method's section is not read


def test_the_old_extra_key_still_loads_as_the_methods_section_and_says_so(tmp_path, caplog):
    toml = tmp_path / "train.toml"
    toml.write_text('method = "sft"\n[extra]\nneftune_noise_alpha = 5.0\n')
    cfg = TrainConfig.load(toml)
    assert cfg.method_args() == {"neftune_noise_alpha": 5.0}
    with caplog.at_level(logging.WARNING):
        check_method_args(cfg)
    assert "`extra` is read as [sft]" in caplog.text
