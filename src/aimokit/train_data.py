"""Training data as TRL takes it: the checks every method's files pass, and traces tokenized with their masks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from .errors import AimokitError

log = logging.getLogger(__name__)


class TrainDataError(AimokitError, ValueError):
    """Training data that would train nothing, or the wrong thing."""


def dataset(df: pl.DataFrame, tok: Any, max_length: int):
    """A datasets.Dataset for TRL: traces tokenized here with their masks (TRL takes input_ids and labels as they
    are); dpo pairs and prompt/completion rows as text, for TRL to tokenize."""
    from datasets import Dataset

    if "response" not in df.columns:
        return Dataset.from_polars(df)
    from .sft_data import TraceTooLong, tokenize_trace

    rows, too_long = [], 0
    for r in df.iter_rows(named=True):
        try:
            rows.append(tokenize_trace(tok, r["prompt"], r["response"], r["tool_spans"], max_length))
        except TraceTooLong:
            too_long += 1
    if not rows:
        raise TrainDataError(f"all {df.height} traces are longer than max_length = {max_length} tokens: raise "
                             "max_length (with gradient_checkpointing for 16k and more) or keep shorter traces "
                             "(sft-data shortest_k)")
    if too_long:
        log.warning("%d of %d traces are longer than max_length = %d tokens and are left out", too_long, df.height,
                    max_length)
    return Dataset.from_list(rows)


def read_rows(path: str, need: tuple[str, ...], method: str) -> pl.DataFrame:
    """A method's parquet file, with the columns it needs and at least one row; else the error names the fix."""
    if not Path(path).is_file():
        raise TrainDataError(f"{path}: no such file; build it with `build.py dpo-data` or `build.py sft-data`")
    df = pl.read_parquet(path)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise TrainDataError(f"{path}: {method} needs column(s) {missing}; it has {df.columns}")
    if df.height == 0:
        raise TrainDataError(f"{path}: no rows; nothing to train on")
    return df
