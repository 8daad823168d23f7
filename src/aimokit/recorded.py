"""Recorded samples from outside the kit, read as response rows: selection is fitted and checked on them.

Why: what separates teams is choosing among answers, and that is learned from many recorded runs of real
models, most of them written by other tools. The common shape is one JSON line per problem (and model):

    {"id", "problem", "gold", "model"?, "samples": [{"answer", "tokens", "score"?, "response"?, "extra"?}]}

as the BoInf and AIMO-3 corpora in shared/data are written. Each sample becomes a row of the kit's record
(responses.SCHEMA): its answer read as an integer (bounded in time; one that is no integer has none), its
tokens, its order, and what its `extra` says of code (`n_python_calls`, `n_tracebacks`) and boxing
(`n_boxed`). What a file lacks stays null, and replay and the selector skip what needs it, saying why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from . import responses
from .errors import AimokitError


class RecordedError(AimokitError, ValueError):
    """A recorded-samples file that cannot be read; the message names the line and the fix."""


def _int(value: Any) -> int | None:
    """An answer or gold as the integer it spells, else None. Only the parser's fast paths run (no sympy):
    a file holds tens of thousands of samples, and an answer a recorder wrote as prose has none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip().replace(",", "")
    if text.lstrip("-").isdigit():
        return int(text) if len(text) <= 40 else None
    from .mathparse import to_integer

    try:
        return to_integer(text, timeout_s=0)
    except Exception:
        return None


def read_jsonl(path: str | Path, error: type[Exception] = RecordedError) -> pl.DataFrame:
    """One recorded-samples JSONL file as response rows (responses.SCHEMA)."""
    p = Path(path)
    lines = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{p}:{n}: not JSON ({e}); each line is one problem with its samples") from None
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("samples"), list):
            raise error(f"{p}:{n}: a line needs `id` and a `samples` list "
                        "({'id', 'gold', 'samples': [{'answer', 'tokens'}]})")
        lines.append(rec)
    ids = [str(r["id"]) for r in lines]
    repeated = len(set(ids)) < len(ids)  # one problem answered by several models: each line its own problem
    rows = []
    for rec in lines:
        pid = f"{rec['id']} [{rec.get('model', '?')}]" if repeated else str(rec["id"])
        gold = _int(rec.get("gold"))
        for i, s in enumerate(rec["samples"]):
            s = s if isinstance(s, dict) else {"answer": s}
            extra = s.get("extra") or {}
            answer = _int(s.get("answer"))
            calls, errors = extra.get("n_python_calls"), extra.get("n_tracebacks")
            rows.append({
                "problem_id": pid, "sample": i, "prompt": rec.get("problem"), "response": s.get("response"),
                "answer": answer, "gold": gold,
                "correct": None if gold is None else answer == gold,
                "boxed": (extra["n_boxed"] > 0) if isinstance(extra.get("n_boxed"), int) else None,
                "tokens": s.get("tokens"), "code_runs": calls, "code_errors": errors,
                "seconds": s.get("seconds"),
            })
    return responses.frame(rows)


def read(paths: list[str], need: tuple[str, ...], error: type[Exception] = RecordedError) -> pl.DataFrame:
    """Responses from the kit's parquet files and recorded JSONL files alike, as one frame."""
    frames = []
    for p in paths:
        if str(p).endswith((".jsonl", ".json")):
            if not Path(p).is_file():
                raise error(f"{p}: no such file")
            df = read_jsonl(p, error)
            empty = [c for c in need if df[c].null_count() == df.height and df.height]
            if empty:
                raise error(f"{p}: no sample records {empty}; replay and the selector need them")
            frames.append(df)
        else:
            frames.append(responses.scan([str(p)], need, error).collect())
    if not frames:
        raise error("no responses file given; pass a responses.parquet or a recorded-samples .jsonl")
    return pl.concat(frames)
