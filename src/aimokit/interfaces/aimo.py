"""AIMO-1: the `aimo` environment's loop, one pandas row in, one answer out."""

from __future__ import annotations

from types import FunctionType
from typing import Any

from ..registry import INTERFACES
from .base import Interface
from .shipped import import_shipped


@INTERFACES.register()
class Aimo(Interface):
    name = "aimo"
    submission_file = "submission.csv"  # the environment writes it

    @classmethod
    def serve(cls, comp: Any, kernel: Any, predict: FunctionType) -> None:
        env = import_shipped("aimo", comp.data_dir).make_env()
        for test, sample_submission in env.iter_test():
            answer = kernel.predict(str(test["id"].iloc[0]), str(test["problem"].iloc[0]))
            sample_submission["answer"] = cls.answer(answer)
            env.predict(sample_submission)
