"""`train` method `dpo`: TRL's DPOTrainer on dpo-data's pairs (prompt, chosen, rejected)."""

from __future__ import annotations

from typing import Any

import polars as pl

from ..config import ConfigError
from ..registry import METHODS
from ..train_config import COMMON, DPO_LOSSES
from ..train_data import read_rows


@METHODS.register()
class DPO:
    name = "dpo"
    trl_config = "DPOConfig"
    passes = COMMON | {"beta", "loss_type", "loss_weights", "precompute_ref_log_probs"}  # the kit sets these
    reads_files = True

    @staticmethod
    def check(cfg: Any) -> None:
        unknown = [t for t in cfg.loss_type if t not in DPO_LOSSES]
        if unknown or not cfg.loss_type:
            raise ConfigError(f"loss_type {unknown or '[]'}: use one or more of {', '.join(DPO_LOSSES)} "
                              "(TRL's DPO losses)")
        if cfg.loss_weights and len(cfg.loss_weights) != len(cfg.loss_type):
            raise ConfigError(f"loss_weights has {len(cfg.loss_weights)} entries for {len(cfg.loss_type)} loss_type")

    @staticmethod
    def read(path: str) -> pl.DataFrame:
        return read_rows(path, ("prompt", "chosen", "rejected"), "dpo").select("prompt", "chosen", "rejected")

    @staticmethod
    def trainer(cfg: Any, model: Any, tok: Any, peft_config: Any, common: dict[str, Any], train_ds: Any,
                val_ds: Any) -> Any:
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(beta=0.1 if cfg.beta is None else cfg.beta, loss_type=list(cfg.loss_type),
                         loss_weights=list(cfg.loss_weights) or None,
                         precompute_ref_log_probs=cfg.precompute_ref_log_probs, **common, **cfg.method_args())
        return DPOTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                          peft_config=peft_config)
