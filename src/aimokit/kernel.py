"""What a submission kernel runs: `predict` behind the competition's interface.

`Kernel.predict` never raises and always returns an answer in range before
the time budget runs out: the engine starts lazily (the AIMO-2/3 server must
start serving within 15 minutes), a crashed engine is restarted only when
enough time remains, a hung engine is abandoned by a watchdog, and every
result is appended to results.jsonl as it is produced. The same object backs
the `kaggle_evaluation` server, the AIMO-1 `aimo` environment and the local
gateway the dry-run uses.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import polars as pl

from .budget import TimeBudget
from .config import SolveConfig, expand_paths, load_config
from .engine import Engine, create_engine
from .problems import Problem
from .solver import ProblemResult, SolveError, Solver

log = logging.getLogger("aimokit")

EngineFactory = Callable[[SolveConfig], Engine]


def _default_factory(cfg: SolveConfig) -> Engine:
    return create_engine(cfg.engine)


class Kernel:
    def __init__(
        self,
        cfg: SolveConfig,
        total_problems: int | None = None,
        engine_factory: EngineFactory = _default_factory,
        started_at: float | None = None,
        watchdog_grace_s: float = 30.0,
    ):
        self.cfg = cfg
        self.engine_factory = engine_factory
        self.budget = TimeBudget(
            cfg.budget,
            cfg.competition.time_limit_s,
            total_problems or cfg.competition.expected_problems,
            cfg.solver,
            started_at=started_at if started_at is not None else time.monotonic(),
        )
        self.out_dir = Path(cfg.run.output_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.results_path = self.out_dir / "results.jsonl"
        self.engine: Engine | None = None
        self.solver: Solver | None = None
        self.engine_dead = False  # a hung engine cannot be trusted again
        self.engine_starts = 0
        self.engine_start_s = 0.0
        self.watchdog_grace_s = watchdog_grace_s
        self.results: list[ProblemResult] = []

    # -- engine life cycle --------------------------------------------------
    def _ensure_solver(self) -> Solver | None:
        if self.solver is not None:
            return self.solver
        if self.engine_dead:
            return None
        if self.engine_starts > 0:
            # A restart costs start-up time: only worth it if enough remains.
            need = self.cfg.budget.startup_estimate_s + self.cfg.budget.min_problem_s
            if self.budget.remaining() < need or self.engine_starts >= 3:
                return None
        self.engine_starts += 1
        t = time.monotonic()
        try:
            self.engine = self.engine_factory(self.cfg)
        except Exception:
            log.exception("engine start failed (attempt %d)", self.engine_starts)
            return None
        finally:
            self.engine_start_s += time.monotonic() - t
        self.solver = Solver(
            self.engine, self.cfg.solver, self.cfg.sandbox, self.cfg.competition,
            max_model_len=self.cfg.engine.max_model_len,
        )
        return self.solver

    def _drop_engine(self) -> None:
        if self.solver is not None:
            self.solver.close()
        if self.engine is not None:
            try:
                self.engine.close()
            except Exception:
                log.exception("engine close failed")
        self.solver = None
        self.engine = None

    # -- the one entry point ---------------------------------------------------
    def predict(self, problem_id: str, problem: str, gold: int | None = None) -> int:
        t0 = time.monotonic()
        try:
            res = self._solve(Problem(str(problem_id), problem, gold))
        except Exception:  # never let one problem sink the submission
            log.exception("predict failed for %s", problem_id)
            res = self._fallback(Problem(str(problem_id), problem, gold), "error")
        gen_seconds = res.seconds  # the solver's own time: engine start-up excluded
        res.seconds = time.monotonic() - t0
        self.budget.record(res.tokens, gen_seconds, res.samples)
        self.results.append(res)
        self._append(res)
        self._progress(res)
        return res.answer

    def _solve(self, p: Problem) -> ProblemResult:
        plan = self.budget.plan()
        if plan.samples <= 0 or plan.seconds <= 0:
            return self._fallback(p, "no-time")
        solver = self._ensure_solver()
        if solver is None:
            return self._fallback(p, "error")
        plan = self.budget.plan()  # the engine start may have used time
        if plan.samples <= 0 or plan.seconds <= 0:
            return self._fallback(p, "no-time")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["res"] = solver.solve([p], plan.deadline, plan.samples)[0]
            except SolveError as e:
                box["res"], box["error"] = e.results[0], e.cause
            except BaseException as e:  # reported to the waiting thread
                box["error"] = e

        th = threading.Thread(target=work, name=f"solve-{p.id}", daemon=True)
        th.start()
        # The engine checks the deadline between steps; if a step itself
        # hangs, give up on it rather than on the competition.
        th.join(max(0.0, plan.deadline - time.monotonic()) + self.watchdog_grace_s)
        if th.is_alive():
            log.error("engine hung past the deadline on %s; answering without it from now on", p.id)
            self.engine_dead = True
            self.solver = None
            return self._fallback(p, "hung")
        if "error" in box:
            log.error("engine failed on %s: %r; it will be restarted if time allows", p.id, box["error"])
            self._drop_engine()
            return box.get("res") or self._fallback(p, "error")
        return box["res"]

    def _fallback(self, p: Problem, why: str) -> ProblemResult:
        from .answers import is_correct

        a = self.cfg.competition.fallback_answer
        return ProblemResult(
            id=p.id, answer=a, votes={}, samples=0, answered=0, tokens=0, seconds=0.0,
            stopped=why, gold=p.answer, correct=is_correct(a, p.answer),
        )

    # -- records ------------------------------------------------------------
    def _append(self, res: ProblemResult) -> None:
        row = res.as_row()
        row["budget_used"] = round(self.budget.used_fraction(), 4)
        with open(self.results_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _progress(self, res: ProblemResult) -> None:
        n, total = self.budget.done, self.budget.total_problems
        tps = res.tokens / res.seconds if res.seconds > 0 else 0.0
        top = sorted(res.votes.items(), key=lambda kv: -kv[1])[:3]
        mark = {True: " ✓", False: " ✗", None: ""}[res.correct]
        log.info(
            "[%d/%d] %s → %d%s  votes %s  %d/%d answered  %d tok  %.1fs (%.0f tok/s)  %s | "
            "budget %.0f%% used, %.0fs left",
            n, total, res.id, res.answer, mark, {k: round(v, 2) for k, v in top}, res.answered,
            res.samples, res.tokens, res.seconds, tps, res.stopped,
            100 * self.budget.used_fraction(), max(0.0, self.budget.remaining()),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "problems": len(self.results),
            "model": self.cfg.engine.model,
            "lora": self.cfg.engine.lora,
            "limit_s": self.budget.limit_s,
            "elapsed_s": round(time.monotonic() - self.budget.started_at, 2),
            "budget_used": round(self.budget.used_fraction(), 4),
            "engine_start_s": round(self.engine_start_s, 2),
            "engine_starts": self.engine_starts,
            "tokens": self.budget.tokens,
            "generation_s": round(self.budget.gen_seconds, 2),
        }

    def close(self) -> None:
        (self.out_dir / "kernel_summary.json").write_text(json.dumps(self.summary(), indent=2))
        if not self.engine_dead:
            self._drop_engine()

    # -- interfaces -----------------------------------------------------------
    def kaggle_predict(self, id_: pl.Series, problem: pl.Series, answer: pl.Series | None = None) -> pl.DataFrame:
        """The AIMO-2/3 `predict`: one-row Series in, a one-row frame out."""
        pid = id_.item(0)
        gold = None
        if answer is not None and answer.item(0) is not None:
            try:
                gold = int(answer.item(0))
            except (TypeError, ValueError):
                gold = None
        value = self.predict(str(pid), str(problem.item(0)), gold)
        return pl.DataFrame({"id": [pid], "answer": [int(value)]})


def _import_competition_module(name: str, data_dir: str) -> Any:
    """Import a module shipped with the competition data (not on PyPI)."""
    if data_dir and data_dir not in sys.path and os.path.isdir(data_dir):
        sys.path.insert(0, data_dir)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RuntimeError(
            f"cannot import {name!r}: it ships with the competition data; attach the competition "
            f"to the kernel (competition.data_dir={data_dir!r}) or set run.problems to use the local gateway"
        ) from e


def serve(cfg: SolveConfig, kernel: Kernel | None = None) -> Kernel:
    """Run the configured interface until the problems are exhausted."""
    from .gateway import run_local_gateway

    comp = cfg.competition
    if cfg.run.problems:
        from .problems import load_problems

        problems = load_problems(cfg.run.problems, comp)
        kernel = kernel or Kernel(cfg, total_problems=len(problems))
        try:
            run_local_gateway(kernel.kaggle_predict, problems, Path(cfg.run.output_dir), comp, cfg.run.shuffle_seed)
        finally:
            kernel.close()
        return kernel

    kernel = kernel or Kernel(cfg)
    try:
        if comp.interface == "kaggle_evaluation":
            module = _import_competition_module(comp.server_module, comp.data_dir)
            server = getattr(module, comp.server_class)(kernel.kaggle_predict)
            if os.getenv("KAGGLE_IS_COMPETITION_RERUN"):
                server.serve()
            else:
                server.run_local_gateway((str(Path(comp.data_dir) / "test.csv"),))
        else:  # AIMO-1
            aimo = _import_competition_module("aimo", comp.data_dir)
            env = aimo.make_env()
            for test, sample_submission in env.iter_test():
                sample_submission["answer"] = kernel.predict(str(test["id"].iloc[0]), str(test["problem"].iloc[0]))
                env.predict(sample_submission)
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


def main(argv: list[str] | None = None) -> int:
    """Kernel entry: config from $AIMOKIT_CONFIG (or the first argument)."""
    setup_logging()
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else os.environ.get("AIMOKIT_CONFIG", "")
    cfg = expand_paths(load_config(path or None))  # $AIMOKIT_INPUT/... resolved here, where it runs
    t0 = os.environ.get("AIMOKIT_T0")  # wall-clock start set by the notebook's first cell
    started = time.monotonic() - max(0.0, time.time() - float(t0)) if t0 else None
    kernel = None
    if cfg.run.problems:
        from .problems import load_problems

        kernel = Kernel(cfg, total_problems=len(load_problems(cfg.run.problems, cfg.competition)), started_at=started)
    else:
        kernel = Kernel(cfg, started_at=started)
    serve(cfg, kernel)
    return 0
