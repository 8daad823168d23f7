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
With `solutions` (a problems file with reference solutions) a problem no sample
solved gets its reference solution as a trace; with no responses at all, every
problem in that file does, its prompt rendered by the kernel's protocol on the
model's tokenizer. The protocol writes the solution the way its answers are read
(`ToolProtocol.written_solution`), and every such trace is checked to grade right.
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
    solutions: str = setting("", help="A problems file with id, problem, answer and solution: the reference solution "
                                      "is a trace for each problem no response solved (all of them, without responses).")
    kernel_config: str = setting("", help="The kernel config whose protocol and prompt render reference solutions; "
                                          "empty: the kernel defaults (fenced).")
    model: str = setting("", help="The model whose chat template renders prompts for reference solutions without "
                                  "responses, and says whether its turns carry a <think> block (its targets are "
                                  "written as its template writes them); empty: the embedded default.")
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
    from . import responses

    return responses.scan(paths, ("problem_id", "prompt", "response", "correct"), SFTDataError).select(
        "problem_id", "prompt", "response", "correct", "tool_spans")  # tool_spans: null in files from before it


def reference_traces(cfg: SFTDataConfig, prompts: dict[str, str] | None) -> pl.DataFrame:
    """Traces from reference solutions: for the problems in `prompts` (their recorded prompt), or every problem
    of the file (prompts rendered here) when `prompts` is None."""
    from .answers import extract_answer, is_correct
    from .config import KernelConfig
    from .problems import read_frame
    from .protocols import get_protocol

    sol = read_frame(cfg.solutions)
    need = [c for c in ("id", "answer", "solution", *(("problem",) if prompts is None else ())) if c not in sol.columns]
    if need:
        raise SFTDataError(f"{cfg.solutions}: reference solutions need column(s) {need}; it has {sol.columns}")
    kernel = KernelConfig.load(cfg.kernel_config)  # empty: the defaults
    protocol = get_protocol(kernel.solver.protocol, kernel.solver)
    from transformers import AutoTokenizer

    from .engine.chat import TokenizerRenderer, template_thinks
    from .models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg.model))
    renderer = TokenizerRenderer(tokenizer)
    thinks = template_thinks(tokenizer)  # the target is what the model's own template writes for the turn
    rows = []
    for r in sol.iter_rows(named=True):
        pid = str(r["id"])
        if prompts is not None and pid not in prompts:
            continue
        prompt = (prompts[pid] if prompts is not None
                  else protocol.prompt(renderer, str(r["problem"]), kernel.solver, kernel.competition))
        response = protocol.written_solution(prompt, str(r["solution"] or ""), str(r["answer"]), thinks=thinks)
        got = extract_answer(protocol.answer_text(response, prompt), [], kernel.competition).answer
        if got is None or not is_correct(got, r["answer"]):  # the kernel's own grading ("025" is 25)
            raise SFTDataError(f"{cfg.solutions}: problem {pid}: the answer {r['answer']!r} does not read back from "
                               f"its trace (got {got}); answers must be integers in the competition's range")
        rows.append({"problem_id": pid, "prompt": prompt, "response": response, "tool_spans": []})
    return pl.DataFrame(rows, schema={"problem_id": pl.String, "prompt": pl.String, "response": pl.String,
                                      "tool_spans": pl.List(pl.List(pl.Int64))})


def make_traces(cfg: SFTDataConfig) -> pl.DataFrame:
    if not cfg.responses and cfg.solutions:
        df = reference_traces(cfg, None)
        if df.height == 0:
            raise SFTDataError(f"{cfg.solutions}: no problems in it")
        return df
    lf = read_traces(cfg.responses)
    if cfg.solutions:  # reference solutions for the problems no sample solved, under their recorded prompt
        from .evaluate import unsolved

        todo = unsolved(lf).collect()
        ref = reference_traces(cfg, dict(zip(todo["problem_id"], todo["prompt"])))
        lf = pl.concat([lf, ref.lazy().with_columns(pl.lit(True).alias("correct"))
                        .select(lf.collect_schema().names())], how="vertical_relaxed")
    traces = (lf.filter(pl.col("correct"))  # in one order whatever the files' (see dpo_data.make_pairs)
              .unique(subset=["problem_id", "prompt", "response"], maintain_order=True)
              .sort(["problem_id", "prompt", "response"], maintain_order=True)
              .with_columns(pl.col("response").str.len_chars().alias("chars")))
    if cfg.shortest_k:
        traces = (traces.sort(["problem_id", "chars"], maintain_order=True)
                  .filter(pl.int_range(pl.len()).over("problem_id") < cfg.shortest_k))
    df = traces.select("problem_id", "prompt", "response", "tool_spans").collect()
    if df.height == 0:
        n = lf.select(pl.col("problem_id").n_unique()).collect().item()
        raise SFTDataError(f"no correct response among {n} problems, so there is nothing to imitate. Evaluate with "
                           "more samples or on problems nearer the model's level, or give reference solutions "
                           "(solutions = a problems file with a 'solution' column)")
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
             "reference_traces": int(df.filter(pl.col("tool_spans").list.len() == 0).height) if cfg.solutions else 0,
             "options": {"shortest_k": cfg.shortest_k, "val_fraction": cfg.val_fraction, "seed": cfg.seed,
                         "solutions": cfg.solutions}}
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
