"""`train` method `sft`: TRL's SFTTrainer on sft-data's traces (prompt, response, tool_spans: tool results
masked), or on the chosen responses of dpo-data's pairs (prompt/completion, TRL's standard format)."""

from __future__ import annotations

from typing import Any

import polars as pl

from ..registry import METHODS
from ..train_config import COMMON
from ..train_data import TrainDataError, read_rows

TRACE_COLUMNS = ("prompt", "response")


@METHODS.register()
class SFT:
    name = "sft"
    trl_config = "SFTConfig"
    passes = COMMON | {"packing"}
    reads_files = True

    @staticmethod
    def check(cfg: Any) -> None:
        pass

    @staticmethod
    def read(path: str) -> pl.DataFrame:
        df = read_rows(path, ("prompt",), "sft")
        if all(c in df.columns for c in TRACE_COLUMNS):
            spans = pl.col("tool_spans") if "tool_spans" in df.columns else pl.lit(None, pl.List(pl.List(pl.Int64)))
            return df.select("prompt", "response", spans.alias("tool_spans"))
        if "chosen" not in df.columns:
            raise TrainDataError(f"{path}: sft needs column(s) ['chosen'] (dpo-data pairs) or ['response'] "
                                 f"(sft-data traces); it has {df.columns}")
        return df.select("prompt", pl.col("chosen").alias("completion"))

    @staticmethod
    def trainer(cfg: Any, model: Any, tok: Any, peft_config: Any, common: dict[str, Any], train_ds: Any,
                val_ds: Any) -> Any:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(completion_only_loss=True, packing=cfg.packing, **common, **cfg.method_args())
        return SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                          peft_config=peft_config)
