"""`evaluate --ray [ADDRESS]`: one evaluation over many engines on many machines, through Ray.

Why Ray: the one-host `--workers` path cannot use a second box, and a queue of claim files is unsafe on
NFS. Here each engine is a Ray actor holding its engine's GPUs (`engine.tensor_parallel_size`); problems
come from one queue (work_queue.WorkQueue, as a Ray actor) as each engine has room, exactly as the
streaming solver draws them on one engine; finished problems go back through the queue to this driver,
which writes `responses.parquet` atomically as they come (at most every `write_every_s`). Faults:

- an actor that dies (OOM, a lost node, a kill) sends the problems it held back to the queue, up to
  `retries` times each; a replacement actor starts while problems remain and restarts are left; the
  others' work is kept;
- the driver skips problems already in the output, so a killed driver restarted on the same `--out`
  continues (its actors die with it: Ray ties an actor to its driver);
- the run ends by naming what failed and why, with the last lines of the actor's own log.

The same command runs on a laptop (ADDRESS empty: a local Ray), on a cluster (`ray start --head`, then
`ray start --address=...` on each box; ADDRESS 'auto' or host:port) and through Ray's job submission
(the job runs this command; ADDRESS 'auto'). Ray is an optional extra (`aimokit[ray]`); the Kaggle kernel
never imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import polars as pl

from . import responses
from .errors import AimokitError

log = logging.getLogger(__name__)

ENGINE_FACTORY = "AIMOKIT_ENGINE_FACTORY"  # "module:function" building the engine in each actor (tests: a fake)


class RayEvalError(AimokitError, RuntimeError):
    """Problems an evaluation on Ray could not finish; what the actors finished is written all the same."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayEvalError("evaluate --ray needs Ray: pip install 'aimokit[ray]' (or ray) on every machine of the "
                           "cluster; the one-machine path is --workers N") from None
    return ray


class EvalActor:
    """One engine of the evaluation: takes problems from the queue while it has room, sends results back."""

    def __init__(self, name: str, kernel_toml: str, ev: dict[str, Any]):
        self.name, self.kernel_toml, self.ev = name, kernel_toml, ev

    def run(self, queue: Any) -> dict[str, Any]:
        import ray

        from .config import KernelConfig
        from .evaluate import EvalConfig, result_rows
        from .problems import Problem
        from .serving import setup_logging
        from .solver import Solver

        setup_logging()
        handler = _QueueLog(queue, self.name)
        logging.getLogger().addHandler(handler)
        queue.seen_at.remote(self.name, f"node {ray.get_runtime_context().get_node_id()[:12]} pid {os.getpid()}")
        cfg = KernelConfig.from_dict(_toml(self.kernel_toml))
        ev = EvalConfig.from_dict(self.ev)
        t = time.monotonic()
        engine = _engine(cfg)
        start_s = time.monotonic() - t
        solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=cfg.engine.max_model_len)
        n = 0

        def pending():
            while True:
                p = ray.get(queue.take.remote(self.name))
                if p is None:
                    return
                yield Problem(p["id"], p["problem"], p["answer"])

        def on_result(r: Any) -> None:
            nonlocal n
            ray.get(queue.finish.remote(self.name, r.id, result_rows(r)))  # done only once the driver's queue has it
            n += 1

        try:
            solver.solve_stream(pending(), on_result, samples=ev.samples, keep_responses=True,
                                **ev.in_flight(cfg.engine.max_num_seqs))
        finally:
            solver.close()
            logging.getLogger().removeHandler(handler)
        return {"problems": n, "engine_start_s": round(start_s, 2)}


class _QueueLog(logging.Handler):
    """The actor's log lines, kept by the queue: a dead actor's last words reach the driver."""

    def __init__(self, queue: Any, name: str):
        super().__init__(logging.INFO)
        self.queue, self.name = queue, name
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.queue.log.remote(self.name, self.format(record))
        except Exception:  # the log must never take the actor down
            pass


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


def _engine(cfg: Any) -> Any:
    factory = os.environ.get(ENGINE_FACTORY)
    if factory:
        import importlib

        module, fn = factory.split(":")
        return getattr(importlib.import_module(module), fn)(cfg)
    from .engine import create_engine

    return create_engine(cfg.engine)


def run_ray(cfg: Any, problems: list[Any], out: Path, ev: Any) -> pl.DataFrame:
    """Evaluate `problems` on `ev.workers` engine actors of the Ray cluster at `ev.ray`; resumes from `out`."""
    ray = _import_ray()
    import aimokit

    from .io import atomic_write
    from .work_queue import WorkQueue

    from .evaluate import resume

    path, done, seen, todo = resume(out, problems)
    frames = [done]
    t0 = time.monotonic()
    if not todo:
        return done
    address = None if ev.ray in ("", "local") else ev.ray
    env = {k: os.environ[k] for k in (ENGINE_FACTORY, "PYTHONPATH") if k in os.environ}
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"py_modules": [os.path.dirname(aimokit.__file__)], "env_vars": env})
    init_s = time.monotonic() - t0  # Ray's own start (a local cluster, or joining one)
    gpus = cfg.engine.tensor_parallel_size if ray.cluster_resources().get("GPU", 0) else 0
    queue = ray.remote(WorkQueue).options(num_cpus=0).remote(
        [{"id": p.id, "problem": p.problem, "answer": p.answer} for p in todo], ev.retries)
    actor_cls = ray.remote(EvalActor).options(num_gpus=gpus, num_cpus=1, max_restarts=0)
    kernel_toml, ev_dict = cfg.to_toml(), {**ev.to_dict(), "workers": 1, "ray": ""}
    running: dict[Any, tuple[str, Any]] = {}
    died: dict[str, str] = {}
    starts: dict[str, float] = {}  # each engine's start, as its actor measured it
    restarts = ev.retries * ev.workers

    def start(name: str) -> None:
        actor = actor_cls.remote(name, kernel_toml, ev_dict)
        running[actor.run.remote(queue)] = (name, actor)

    for i in range(min(ev.workers, len(todo))):
        start(f"engine-{i}")
    last_write, finished, unwritten = 0.0, len(seen), False

    def write(force: bool = False) -> None:
        nonlocal last_write, finished, unwritten
        got = ray.get(queue.drain.remote())
        if got:
            frames.append(responses.frame([row for _, rows in got for row in rows]))
            finished += len(got)
            unwritten = True
        if unwritten and (force or time.monotonic() - last_write >= ev.write_every_s):
            responses.write(path, pl.concat(frames))
            last_write, unwritten = time.monotonic(), False
            log.info("evaluated %d/%d problems", finished, len(problems))

    try:
        while running:
            ready, _ = ray.wait(list(running), timeout=max(0.2, min(ev.write_every_s, 2.0)))
            for ref in ready:
                name, _ = running.pop(ref)
                try:
                    starts[name] = ray.get(ref)["engine_start_s"]
                except Exception as e:  # the actor died, or its engine failed: its problems go back
                    why = _why(e)
                    died[name] = why
                    back = ray.get(queue.lost.remote(name, why))
                    log.warning("%s failed (%s); %d problem(s) back in the queue", name, why, len(back))
                    if restarts > 0 and ray.get(queue.replace.remote(name)):
                        restarts -= 1
                        start(f"{name}r")
            write()
    finally:
        write(force=True)
    state = ray.get(queue.state.remote())
    df = pl.concat(frames).unique(subset=["problem_id", "sample"], keep="first", maintain_order=True)
    atomic_write(out / "eval_meta.json", json.dumps({
        "model": cfg.engine.model, "lora": cfg.engine.lora, "samples": ev.samples, "ray": ev.ray or "local",
        "engines": ev.workers, "where": state["where"], "failed_actors": died, "engine_starts_s": starts,
        "engine_start_s": max(starts.values(), default=None), "ray_init_s": round(init_s, 2),
        "wall_s": round(time.monotonic() - t0, 2)}, indent=2))
    missing = sorted(set(p.id for p in todo) - set(df["problem_id"].to_list()))
    if missing:
        tails = "\n".join(f"--- {w} ({state['where'].get(w, '?')}): {died.get(w, '')}\n" + "\n".join(lines[-10:])
                          for w, lines in state["logs"].items() if w in died)
        raise RayEvalError(f"{len(missing)} problem(s) not evaluated ({', '.join(missing[:5])}): "
                           f"{'; '.join(f'{w}: {why}' for w, why in died.items()) or 'no engine took them'}. "
                           f"What the others finished is in {path}, and a rerun resumes from it.\n{tails}")
    if died:
        log.warning("engines that failed: %s; the others evaluated every problem",
                    "; ".join(f"{w} ({state['where'].get(w, '?')}): {why}" for w, why in died.items()))
    return df


def _why(e: BaseException) -> str:
    """A short reason from Ray's error (an actor's death names its cause; a task error, the exception)."""
    text = str(e).strip().splitlines()
    head = next((line for line in text if "died" in line or "Error" in line), text[0] if text else repr(e))
    return f"{type(e).__name__}: {head.strip()[:300]}"
