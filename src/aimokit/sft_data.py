"""Evaluated responses -> SFT traces, and a trace -> token ids with the loss on the model's own tokens only.

A trace is a prompt and a response exactly as the kernel wrote them: the
prompt is the protocol's rendering of the problem (`ToolProtocol.prompt`, the
model's chat template) and the response is the sample's text, tool results
included, as the protocol appended them (`ToolProtocol.tool_result`). Nothing
is rendered again here, so training text and inference text cannot drift.
`evaluate` records where each tool result sits (`tool_spans`); tokenizing
splits the response there, the way the kernel builds a continued sample's ids
(what the model wrote, then each tool result encoded on its own), and labels
the prompt and the tool results -100: the model learns to call the tool and
to use its output, never to write the output itself.

`sft-data` keeps the correct responses, drops repeats, and optionally the
shortest k per problem (shorter correct traces: the AIMO-2 teams' direction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from .config import ConfigError, Job, setting
from .errors import AimokitError
from .io import atomic_write

IGNORE = -100  # the label transformers' loss skips


class SFTDataError(AimokitError, ValueError):
    """Responses that make no SFT trace; the message names the fix."""


class TraceTooLong(SFTDataError):
    """One trace over max_length (train drops it and counts it; all of them too long is an error)."""


@dataclass(frozen=True)
class SFTDataConfig(Job):
    """Evaluated responses -> SFT traces (prompt, response, tool_spans)."""

    what: ClassVar[str] = "sft-data config"

    responses: list[str] = setting(default_factory=list, help="Parquet files written by `build.py evaluate`.")
    out: str = setting("runs/sft-data", help="train.parquet, val.parquet and stats.json go here.")
    shortest_k: int = setting(0, help="Keep only the k shortest correct responses of each problem; 0: all of them.")
    val_fraction: float = setting(0.1, help="The share of problems (never of traces) held out for validation.")
    seed: int = setting(0, help="The split.")

    def __post_init__(self) -> None:
        if self.shortest_k < 0:
            raise ConfigError("shortest_k must be >= 0 (0: every correct response)")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction must be in [0, 1)")


def read_traces(paths: list[str]) -> pl.LazyFrame:
    from .evaluate import scan_responses

    return scan_responses(paths, SFTDataError)


def make_traces(cfg: SFTDataConfig) -> pl.DataFrame:
    lf = read_traces(cfg.responses)
    traces = (lf.filter(pl.col("correct"))
              .unique(subset=["problem_id", "prompt", "response"], maintain_order=True)
              .with_columns(pl.col("response").str.len_chars().alias("chars")))
    if cfg.shortest_k:
        traces = (traces.sort(["problem_id", "chars"], maintain_order=True)
                  .filter(pl.int_range(pl.len()).over("problem_id") < cfg.shortest_k))
    df = traces.select("problem_id", "prompt", "response", "tool_spans").collect()
    if df.height == 0:
        n = lf.select(pl.col("problem_id").n_unique()).collect().item()
        raise SFTDataError(f"no correct response among {n} problems, so there is nothing to imitate. Evaluate with "
                           "more samples or on problems nearer the model's level")
    return df


def build_sft_data(cfg: SFTDataConfig) -> dict[str, Any]:
    """Write train.parquet, val.parquet and stats.json under cfg.out; return the stats."""
    from .dpo_data import split_by_problem

    df = make_traces(cfg)
    train, val = split_by_problem(df, cfg.val_fraction, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val)):
        atomic_write(out / f"{name}.parquet", part)
    stats = {"problems": {"train": train["problem_id"].n_unique(), "val": val["problem_id"].n_unique()},
             "traces": {"train": train.height, "val": val.height},
             "options": {"shortest_k": cfg.shortest_k, "val_fraction": cfg.val_fraction, "seed": cfg.seed}}
    atomic_write(out / "stats.json", json.dumps(stats, indent=2))
    return stats


def tokenize_trace(tokenizer: Any, prompt: str, response: str, tool_spans: list[list[int]] | None,
                   max_length: int) -> dict[str, list[int]]:
    """input_ids and labels of one trace: the prompt and each tool result labelled IGNORE, the model's text
    (and an end-of-sequence token, so it learns to stop) labelled with itself.

    A trace longer than `max_length` is an error that says so (cutting it would teach the model to stop
    mid-solution, or to answer without its tool results)."""
    def enc(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False) if text else []

    ids = enc(prompt)
    labels = [IGNORE] * len(ids)
    at = 0
    for start, end in sorted(tool_spans or []):
        if not 0 <= at <= start <= end <= len(response):
            raise SFTDataError(f"tool span [{start}, {end}) does not fit a response of {len(response)} characters; "
                               "rebuild the traces from the responses.parquet `build.py evaluate` wrote")
        own, tool = enc(response[at:start]), enc(response[start:end])
        ids += own + tool
        labels += own + [IGNORE] * len(tool)
        at = end
    own = enc(response[at:])
    if tokenizer.eos_token_id is not None and not response.endswith(tokenizer.eos_token or "\0"):
        own.append(tokenizer.eos_token_id)
    ids += own
    labels += own
    if len(ids) > max_length:
        raise TraceTooLong(f"a trace of {len(ids)} tokens is longer than max_length = {max_length}: raise max_length "
                           "(with gradient_checkpointing for 16k and more), or keep shorter traces (sft-data shortest_k)")
    return {"input_ids": ids, "labels": labels}
