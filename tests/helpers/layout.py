"""Where things are, and the one fake competition folder every interface test lays out."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from aimokit.problems import sample_problems

ROOT = Path(__file__).resolve().parents[2]
AIME = sample_problems()
COMPETITION_PACKAGE = ROOT / "tests" / "stand_ins" / "kaggle_evaluation"  # never on sys.path itself
COMPETITION_MODULES = ("kaggle_evaluation", "aimo")


def lay_out_competition(data: Path, rows: list[dict], file: str = "test.csv") -> Path:
    """A competition folder as Kaggle mounts it: the `kaggle_evaluation` stand-in beside test.csv."""
    data.mkdir(parents=True, exist_ok=True)
    shutil.copytree(COMPETITION_PACKAGE, data / "kaggle_evaluation", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    pl.DataFrame(rows).write_csv(data / file)
    return data


def make_read_only(folder: Path) -> Path:
    """Every file and folder under `folder` read-only, as Kaggle mounts /kaggle/input (files 0444, folders 0555)."""
    import os

    for dirpath, _, files in os.walk(folder):
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o444)
        os.chmod(dirpath, 0o555)
    return folder
