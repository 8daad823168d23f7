"""Importing a module that ships with the competition's data (kaggle_evaluation, aimo): not on PyPI."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def import_shipped(name: str, data_dir: str) -> Any:
    """`name` from the competition's data folder (put on sys.path), with the fix when it is not there."""
    if data_dir and data_dir not in sys.path and os.path.isdir(data_dir):
        sys.path.insert(0, data_dir)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RuntimeError(
            f"cannot import {name!r}: it ships with the competition data; attach the competition "
            f"to the kernel (competition.data_dir={data_dir!r}) or set run.problems to use the local gateway"
        ) from e
