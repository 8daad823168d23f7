"""A local stand-in for the `kaggle_evaluation` gateway.

It behaves as the real one does, so a kernel that passes here fails on Kaggle
for no interface reason:
- the listener must be a plain function named `predict` (the real relay checks
  `types.FunctionType`, refuses lambdas and routes by `__name__`);
- rows are shuffled and sent one at a time, each column a one-element polars
  Series, and `predict` runs on a worker thread, as on the relay's server;
- the returned frame is checked.
Unlike the real one, it writes submission.parquet atomically after every
problem, so a crash, a kill or a timeout keeps every answer given so far, and a
failed write (a full disk) leaves the previous file whole.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FunctionType
from typing import Callable

import polars as pl

from .config import CompetitionConfig
from .errors import AimokitError
from .problems import Problem
from .io import atomic_write


log = logging.getLogger(__name__)


class GatewayError(AimokitError, RuntimeError):
    """predict returned something the competition would reject."""


def check_listener(fn: object, name: str = "predict") -> None:
    """Refuse what the real relay refuses, with its words."""
    if not isinstance(fn, FunctionType):
        raise GatewayError(f"Endpoint listeners passed to `serve` must be functions, got {type(fn)}")
    if fn.__name__ == "<lambda>":
        raise GatewayError("Functions passed as endpoint listeners must be named")
    if fn.__name__ != name:
        raise GatewayError(f"No listener for {name} was registered (got a function named {fn.__name__!r})")


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
    entry = comp.entry
    if not entry.is_answer(answer):
        raise GatewayError(f"answer for {problem_id!r} must be an {entry.answer_type.__name__}, got {answer!r}")
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
    check_listener(predict)
    order = list(problems)
    random.Random(shuffle_seed).shuffle(order)
    path = Path(output_dir) / "submission.parquet"
    rows: list[tuple[str, int]] = []
    written = 0
    server = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-server")
    fut, current = None, None
    try:
        for p in order:
            args = [pl.Series("id", [p.id]), pl.Series("problem", [p.problem])]
            if p.answer is not None:  # as on reference.csv: the answer column is passed too
                args.append(pl.Series("answer", [p.answer]))
            fut, current = server.submit(predict, *args), p.id
            answer = check_prediction(fut.result(), p.id, comp)
            rows.append((p.id, answer))
            fut = None
            written = _try_write(rows, path, written)
    finally:
        # Stopped (SIGTERM) while a prediction had just come back: it was answered, so it is kept.
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            try:
                rows.append((current, check_prediction(fut.result(), current, comp)))
            except GatewayError:
                pass
        if written < len(rows):  # unwritten answers: one more try
            _try_write(rows, path, written)
        server.shutdown(wait=False, cancel_futures=True)
    return path


def _try_write(rows: list[tuple[str, int]], path: Path, written: int) -> int:
    """Write the submission; on failure (a full disk) the last complete file stays and the run goes on."""
    try:
        write_submission(rows, path)
        return len(rows)
    except Exception as e:  # OSError, or polars' ComputeError wrapping one ("File too large", "No space left")
        log.error("could not write %s (%s); the previous version, with %d answers, is intact", path, e, written)
        return written
