"""A local stand-in for the `kaggle_evaluation` gateway.

It behaves as the real one does — rows shuffled, one problem at a time,
each column a one-element polars Series, the returned frame checked — so a
kernel that passes here fails on Kaggle for no interface reason. Unlike the
real one, it writes submission.parquet atomically after every problem, so a
crash or a timeout keeps every answer given so far.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import polars as pl

from .config import CompetitionConfig
from .problems import Problem
from .report import atomic_write


class GatewayError(RuntimeError):
    """predict returned something the competition would reject."""


def write_submission(rows: list[tuple[str, int]], path: Path) -> None:
    """Atomic: the file on disk is always a complete, valid submission."""
    df = pl.DataFrame({"id": [r[0] for r in rows], "answer": [r[1] for r in rows]},
                      schema={"id": pl.String, "answer": pl.Int64})
    atomic_write(path, df)


def check_prediction(out: object, problem_id: str, comp: CompetitionConfig) -> int:
    if not isinstance(out, pl.DataFrame):
        raise GatewayError(f"predict must return a polars DataFrame, got {type(out).__name__}")
    if out.columns[:2] != ["id", "answer"] or out.height != 1:
        raise GatewayError(
            f"predict must return one row with columns ['id', 'answer'] (id first); got {out.columns} x {out.height}"
        )
    if str(out["id"].item(0)) != problem_id:
        raise GatewayError(f"predict answered id {out['id'].item(0)!r} for problem {problem_id!r}")
    answer = out["answer"].item(0)
    if not isinstance(answer, int) or isinstance(answer, bool):
        raise GatewayError(f"answer for {problem_id!r} must be an int, got {answer!r}")
    if not comp.answer_min <= answer <= comp.answer_max:
        raise GatewayError(f"answer {answer} for {problem_id!r} is outside [{comp.answer_min}, {comp.answer_max}]")
    return answer


def run_local_gateway(
    predict: Callable[..., pl.DataFrame],
    problems: list[Problem],
    output_dir: Path,
    comp: CompetitionConfig,
    shuffle_seed: int = 0,
) -> Path:
    order = list(problems)
    random.Random(shuffle_seed).shuffle(order)
    path = Path(output_dir) / "submission.parquet"
    rows: list[tuple[str, int]] = []
    for p in order:
        args = [pl.Series("id", [p.id]), pl.Series("problem", [p.problem])]
        if p.answer is not None:  # as on reference.csv: the answer column is passed too
            args.append(pl.Series("answer", [p.answer]))
        answer = check_prediction(predict(*args), p.id, comp)
        rows.append((p.id, answer))
        write_submission(rows, path)
    return path
