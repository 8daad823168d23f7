"""Problem files: csv / jsonl / parquet in, validated `Problem`s out.

A bad file must fail before the engine spends minutes starting, and the error
must say which file, which row and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .config import CompetitionConfig
from .errors import AimokitError


PACKAGED_SAMPLE = Path(__file__).parent / "data" / "aime24.jsonl"  # a copy of shared/data/aime24.jsonl


def sample_problems() -> Path:
    """The 30 AIME 2024 problems: shared/data beside the checkout when it is there, else the packaged copy.

    The copy keeps a clone anywhere (CI's temporary folder, a GPU machine) able
    to run the dry-run, the tests and the benchmarks.
    """
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "aime24.jsonl"
    return shared if shared.is_file() else PACKAGED_SAMPLE


class ProblemFileError(AimokitError, ValueError):
    """A problems file cannot be used as it is."""


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: int | None = None


_READERS = {
    ".csv": lambda p: pl.read_csv(p, infer_schema_length=0),  # all strings: ids keep leading zeros
    ".jsonl": pl.read_ndjson,
    ".ndjson": pl.read_ndjson,
    ".parquet": pl.read_parquet,
}


def read_frame(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise ProblemFileError(f"{p}: no such file; pass a .csv, .jsonl or .parquet problems file")
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise ProblemFileError(
            f"{p}: unknown extension {p.suffix!r}; use .csv, .jsonl or .parquet"
        )
    try:
        return reader(p)
    except pl.exceptions.NoDataError as e:
        raise ProblemFileError(f"{p}: the file is empty; it needs columns id, problem (and optionally answer)") from e
    except Exception as e:  # polars raises several kinds for malformed input
        raise ProblemFileError(f"{p}: cannot be parsed as {p.suffix[1:]}: {e}") from e


def load_problems(path: str | Path, competition: CompetitionConfig | None = None) -> list[Problem]:
    """Read a problems file; validate columns, ids and answers against the competition."""
    comp = competition or CompetitionConfig()
    p = Path(path)
    df = read_frame(p)
    missing = [c for c in ("id", "problem") if c not in df.columns]
    if missing:
        raise ProblemFileError(
            f"{p}: missing column(s) {', '.join(missing)}; found {df.columns}. "
            "Rename the columns to id, problem (and answer, if known)."
        )
    if df.height == 0:
        raise ProblemFileError(f"{p}: the file has a header but no rows; add at least one problem")

    ids = df["id"].cast(pl.String)
    dup = df.with_row_index("row").with_columns(ids.alias("_id")).filter(pl.col("_id").is_duplicated())
    if dup.height:
        first = dup.row(0, named=True)
        rows = dup.filter(pl.col("_id") == first["_id"])["row"].to_list()
        raise ProblemFileError(
            f"{p}: duplicate id {first['_id']!r} at rows {[r + 1 for r in rows]}; ids must be unique"
        )

    problems: list[Problem] = []
    has_answer = "answer" in df.columns
    for i, row in enumerate(df.iter_rows(named=True)):
        where = f"{p}, row {i + 1} (id {row['id']!r})"
        if row["id"] is None or str(row["id"]).strip() == "":
            raise ProblemFileError(f"{where}: empty id; give every problem an id")
        text = row["problem"]
        if not isinstance(text, str) or not text.strip():
            raise ProblemFileError(f"{where}: empty problem text")
        answer = None
        if has_answer and row["answer"] is not None and str(row["answer"]).strip() != "":
            answer = _parse_answer(row["answer"], where, comp)
        problems.append(Problem(id=str(row["id"]), problem=text, answer=answer))
    return problems


def _parse_answer(value: object, where: str, comp: CompetitionConfig) -> int:
    try:
        f = float(str(value).strip())
    except ValueError:
        raise ProblemFileError(f"{where}: answer {value!r} is not an integer") from None
    if not f.is_integer():
        raise ProblemFileError(f"{where}: answer {value!r} is not an integer")
    a = int(f)
    if not comp.answer_min <= a <= comp.answer_max:
        raise ProblemFileError(
            f"{where}: answer {a} is outside {comp.name}'s range "
            f"[{comp.answer_min}, {comp.answer_max}]; fix the answer or pick the competition "
            "whose range it belongs to (competition.answer_max)"
        )
    return a
