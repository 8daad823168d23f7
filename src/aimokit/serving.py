"""How a Kernel is reached: the competition's server, the AIMO-1 environment, or the local gateway.

The real `kaggle_evaluation` relay accepts only plain, named functions as
endpoint listeners (`isinstance(f, types.FunctionType)`, no lambdas, no bound
methods) and routes each call by the function's `__name__`; it calls them on a
server thread, never the main one. `make_predict` hands it exactly that: a
function named `predict`.

SIGTERM (a notebook stopped, a rerun torn down) raises SystemExit in the main
thread, so the `finally` blocks run: results.jsonl is already fsynced per
problem, the local gateway's submission is already complete for every problem
answered, and the kernel summary is written on the way out.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FunctionType
from typing import Any

import polars as pl

from .config import KernelConfig, expand_paths
from .kernel import Kernel
from .problems import Problem, load_problems

log = logging.getLogger("aimokit")


def make_predict(kernel: Kernel) -> FunctionType:
    """The endpoint listener the competition's relay accepts: a plain function named `predict`."""

    def predict(id_, problem, answer=None, *extra):  # reference.csv also passes `answer`
        return predict_row(kernel, id_, problem, answer)

    return predict


def predict_row(kernel: Kernel, id_: Any, problem: Any, answer: Any = None) -> pl.DataFrame:
    """The AIMO-2/3 `predict`: one-row Series in, a one-row frame out; never raises.

    A malformed row (no id, several ids, no problem text) still gets a frame
    with one row per id given, answered with the fallback, so the gateway's
    row-count check passes and the run goes on.
    """
    ids = _values(id_)
    fallback = kernel.cfg.competition.fallback_answer
    texts = _values(problem)
    if len(ids) != 1 or len(texts) != 1 or not isinstance(texts[0], str) or not texts[0].strip():
        kernel.record_event("malformed row from the gateway (ids %r, problem %.80r); answering %d for each id",
                            ids[:5], texts[:1], fallback)
        return pl.DataFrame({"id": ids, "answer": [fallback] * len(ids)})
    pid = ids[0]
    entry = kernel.cfg.competition.entry  # the competition's answer type, both ways across its boundary
    gold = None
    golds = _values(answer) if answer is not None else []
    if golds and golds[0] is not None:
        try:
            gold = entry.answer(golds[0])
        except (TypeError, ValueError):
            gold = None
    value = kernel.predict(str(pid), texts[0], gold)
    try:
        value = entry.answer(value)
    except (TypeError, ValueError):  # the kernel answers in type; were it ever not, the row is still answered
        kernel.record_event("answer %r for %s is no %s; answering %r", value, pid, entry.answer_type.__name__, fallback)
        value = fallback
    return pl.DataFrame({"id": [pid], "answer": [value]})


def _values(x: Any) -> list:
    """A column's values whatever the gateway sent: a Series, a list, or a bare scalar."""
    if isinstance(x, pl.Series):
        return x.to_list()
    if hasattr(x, "tolist"):  # pandas / numpy
        v = x.tolist()
        return v if isinstance(v, list) else [v]
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def serve(cfg: KernelConfig, kernel: Kernel | None = None, problems: list[Problem] | None = None) -> Kernel:
    """Run the configured interface until the problems are exhausted (or the process is stopped)."""
    from .gateway import run_local_gateway

    comp = cfg.competition
    if cfg.run.problems:
        problems = problems if problems is not None else load_problems(cfg.run.problems, comp)
        kernel = kernel or Kernel(cfg, total_problems=len(problems))
        try:
            run_local_gateway(make_predict(kernel), problems, Path(cfg.run.output_dir), comp, cfg.run.shuffle_seed)
        finally:
            kernel.close()
        return kernel

    kernel = kernel or Kernel(cfg)
    try:
        comp.entry.serve(comp, kernel, make_predict(kernel))
    finally:
        kernel.close()
    return kernel


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _on_sigterm(signum: int, frame: Any) -> None:
    log.error("SIGTERM: stopping; every answered problem is in results.jsonl, the summary is written on exit")
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM becomes SystemExit in the main thread, so every `finally` runs (call from the main thread)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def main(argv: list[str] | None = None) -> int:
    """Kernel entry: config from $AIMOKIT_CONFIG (or the first argument)."""
    setup_logging()
    install_signal_handlers()
    if argv is None:  # in a notebook, sys.argv is the Jupyter kernel's own (-f <connection file>)
        argv = [] if "ipykernel" in sys.modules else sys.argv[1:]
    path = argv[0] if argv else os.environ.get("AIMOKIT_CONFIG", "")
    cfg = expand_paths(KernelConfig.load(path or None))  # $AIMOKIT_INPUT/... resolved here, where it runs
    t0 = os.environ.get("AIMOKIT_T0")  # wall-clock start set by the notebook's first cell
    started = time.monotonic() - max(0.0, time.time() - float(t0)) if t0 else None
    problems = load_problems(cfg.run.problems, cfg.competition) if cfg.run.problems else None
    kernel = Kernel(cfg, total_problems=len(problems) if problems else None, started_at=started)
    serve(cfg, kernel, problems)
    return 0
