"""AIMO-2/3: the competition's `kaggle_evaluation` inference server, handed the kernel's `predict`.

On a competition rerun (KAGGLE_IS_COMPETITION_RERUN) `serve()` blocks while Kaggle's gateway calls predict one
problem at a time; otherwise `run_local_gateway` plays test.csv through it, as a notebook's interactive run does.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import FunctionType
from typing import Any

from ..registry import INTERFACES
from .base import Interface
from .shipped import import_shipped


@INTERFACES.register()
class KaggleEvaluation(Interface):
    name = "kaggle_evaluation"
    submission_file = "submission.parquet"  # the gateway writes it

    @staticmethod
    def serve(comp: Any, kernel: Any, predict: FunctionType) -> None:
        module = import_shipped(comp.server_module, comp.data_dir)
        server = getattr(module, comp.server_class)(predict)
        if os.getenv("KAGGLE_IS_COMPETITION_RERUN"):
            server.serve()  # blocks: the gateway runs elsewhere and calls predict
        else:
            server.run_local_gateway((str(Path(comp.data_dir) / "test.csv"),))
