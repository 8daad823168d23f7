"""The response record: one row per sample, as `evaluate` writes it and dpo-data, sft-data and replay read it.

Why one owner: the record was spelled out three times (the solver's dict, evaluate's row, the schema) and read
three ways (two scans and replay's own column list), so a new column had to be added in five places and a
reader could miss it. Here are the columns and their types, the version, the row a solved sample becomes,
and the one reader and writer. Files from an older kit read with the newer columns null.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl

from .errors import AimokitError
from .io import atomic_write

FILE = "responses.parquet"
VERSION = 3  # 1: before the version was written (no answer_at / tool_refusals); 2: no chosen / genselect; 3: this
VERSION_KEY = "aimokit.responses"
SCHEMA = {
    "problem_id": pl.String, "sample": pl.Int64, "prompt": pl.String, "response": pl.String,
    "answer": pl.Int64, "gold": pl.Int64, "correct": pl.Boolean, "boxed": pl.Boolean, "tokens": pl.Int64,
    "code_runs": pl.Int64, "code_errors": pl.Int64, "aborted": pl.Boolean, "seconds": pl.Float64,
    # for `replay`: the order samples finished in, and the model's token entropy (null without logprobs)
    "finished_at": pl.Int64, "entropy_mean": pl.Float64, "entropy_median": pl.Float64, "entropy_tail": pl.Float64,
    # for `sft-data`: [start, end) of each tool result in `response`, text the model did not write (masked in SFT)
    "tool_spans": pl.List(pl.List(pl.Int64)),
    # where the answer was read: the protocol's segment (final, analysis, answer, thinking...), "printed" (the
    # last integer code printed) or "" (none); and the calls answered "tool budget spent" instead of run
    "answer_at": pl.String, "tool_refusals": pl.Int64,
    # per problem, on each of its rows: the answer the solver gave (its vote, or GenSelect's pick) and what
    # GenSelect did ("" when off)
    "chosen": pl.Int64, "genselect": pl.String,
}
SAMPLE_FIELDS = ("sample", "prompt", "response", "answer", "boxed", "answer_at", "tool_refusals", "tokens",
                 "code_runs", "code_errors", "aborted", "finished_at", "tool_spans", "entropy_mean",
                 "entropy_median", "entropy_tail")  # what the solver records of each sample (keep_responses)


class ResponsesError(AimokitError, ValueError):
    """Base of the readers' errors when a caller names none (each job passes its own error class)."""


def sample_record(x: Any, prompt: str, entropy_tail: int) -> dict[str, Any]:
    """The solver's record of one finished sample (`x` a solver sample): SAMPLE_FIELDS, nothing else."""
    rec = {"sample": x.index, "prompt": prompt, "response": x.text, "answer": x.answer, "boxed": x.boxed,
           "answer_at": x.answer_at, "tool_refusals": x.refusals, "tokens": x.tokens, "code_runs": x.code_runs,
           "code_errors": x.code_errors, "aborted": x.aborted, "finished_at": x.finished_at,
           "tool_spans": x.tool_spans, **x.entropy_stats(entropy_tail)}
    assert tuple(rec) == SAMPLE_FIELDS, sorted(set(rec) ^ set(SAMPLE_FIELDS))
    return rec


def rows(problem_id: str, gold: int | None, seconds_each: float, records: list[dict[str, Any]],
         correct: Any, chosen: int | None = None, genselect: str = "") -> list[dict[str, Any]]:
    """A solved problem's sample records as response rows; `correct(answer, gold)` grades each one."""
    return [{"problem_id": problem_id, "gold": gold, "correct": bool(correct(r["answer"], gold)),
             "seconds": seconds_each, "chosen": chosen, "genselect": genselect, **r} for r in records]


def frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame([{c: r.get(c) for c in SCHEMA} for r in records], schema=SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Every column of the schema, in order and type; one an older file lacks is null."""
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in SCHEMA.items() if c not in df.columns]
    return df.with_columns(missing).select(list(SCHEMA)).cast(SCHEMA)


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def write(path: Path, df: pl.DataFrame) -> None:
    """Atomically, with the record's version in the file's metadata."""
    buf = io.BytesIO()
    conform(df).write_parquet(buf, metadata={VERSION_KEY: str(VERSION)})
    atomic_write(path, buf.getvalue())


def version(path: str | Path) -> int:
    return int(pl.read_parquet_metadata(path).get(VERSION_KEY, 1))


def _checked(path: str | Path, need: tuple[str, ...], error: type[Exception]) -> pl.LazyFrame:
    if not Path(path).is_file():
        raise error(f"{path}: no such file; run `build.py evaluate` to produce it")
    try:
        lf = pl.scan_parquet(path)
        cols = lf.collect_schema().names()
    except Exception as e:  # polars raises its own errors for a file that is no parquet
        raise error(f"{path}: not a parquet file ({e}); use the {FILE} that `build.py evaluate` writes") from None
    missing = [c for c in need if c not in cols]
    if missing:
        raise error(f"{path}: missing column(s) {missing}; it has {cols}. Use the {FILE} that "
                    "`build.py evaluate` writes")
    if version(path) > VERSION:
        raise error(f"{path}: written by a newer kit (record version {version(path)}, this kit reads up to "
                    f"{VERSION}); update the kit")
    return lf


def scan(paths: list[str], need: tuple[str, ...], error: type[Exception] = ResponsesError) -> pl.LazyFrame:
    """The responses files as one lazy frame of every schema column (nulls where a file lacks one); each file
    must hold `need`, or `error` names the file, what it lacks and the fix."""
    if not paths:
        raise error(f"no responses file given; pass the {FILE} written by `build.py evaluate`")
    frames = []
    for p in paths:
        lf = _checked(p, need, error)
        cols = lf.collect_schema().names()
        frames.append(lf.with_columns([pl.lit(None, dt).alias(c) for c, dt in SCHEMA.items() if c not in cols])
                      .select(list(SCHEMA)).cast(SCHEMA))
    return pl.concat(frames)


def read(path: str | Path, error: type[Exception] = ResponsesError) -> pl.DataFrame:
    """One responses file, conformed to the schema (a resumed run appends to it)."""
    return scan([str(path)], ("problem_id", "sample"), error).collect()
