"""Evaluate a model (and adapter) on a labelled problem set: every response kept, maj and pass reported.

The same Solver the kernel uses produces K samples per problem, with early
stopping off so every problem gets all K (pass@k and maj@k need them). Problems
stream through one engine loop (`Solver.solve_stream`): the next one enters as
soon as one sample of room is free, its samples starting as room frees, so the
engine's batch never drains between problems. Each response is a parquet row,
the input of `dpo_data`; the file is rewritten atomically at most every
`write_every_s` as problems finish, and a rerun skips the problems already
there, so a crash or a timeout loses at most the problems in flight and the
last seconds of finished ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import polars as pl

from . import responses
from .answers import is_correct
from .config import ConfigError, Job, KernelConfig, setting
from .errors import AimokitError
from .problems import Problem, ProblemFileError
from .io import atomic_write

log = logging.getLogger(__name__)

RESPONSES = responses.FILE
RESPONSE_SCHEMA = responses.SCHEMA  # the record's owner is aimokit.responses


def unsolved(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The problems no response answered correctly, each with its first recorded prompt (problem_id, prompt):
    where dpo-data and sft-data put a reference solution."""
    return (lf.group_by("problem_id", maintain_order=True)
            .agg(pl.col("correct").any().alias("solved"), pl.col("prompt").first())
            .filter(~pl.col("solved")).select("problem_id", "prompt"))


@dataclass(frozen=True)
class EvalConfig(Job):
    """One evaluation: which problems, how many samples each, and how the figures are computed."""

    what: ClassVar[str] = "eval config"

    problems: str = setting("", help="Labelled problems (csv, parquet or jsonl with an answer); empty: the 30 AIME 2024 problems.")
    samples: int = setting(8, help="K responses per problem (early stop is off: pass@k and maj@k need all K).")
    concurrency: int = setting(0, help="Samples in flight: the next problem enters as soon as its samples fit; "
                                        "0: the engine's max_num_seqs (what it holds at once).")
    tool_room: int = setting(-1, help="Samples that may start beyond `concurrency` while others wait on their code "
                                      "in the sandbox (a sample in a tool turn holds no place in the engine's "
                                      "batch), so `concurrency` keep generating through tool turns; when their code "
                                      "returns the engine queues the extra. -1: a quarter of `concurrency` (at 64 "
                                      "in flight on one H200 it lifted tok/s 4%, docs/benchmarks.md); 0: "
                                      "`concurrency` bounds every started sample.")
    write_every_s: float = setting(30.0, help="Finished problems are written to responses.parquet at most this "
                                               "often (and at the end); 0: after every problem.")
    workers: int = setting(1, help="Engines side by side, each on its own engine.tensor_parallel_size GPUs out of "
                                   "the visible ones: each takes the next unclaimed problem when it has room, and "
                                   "the workers' responses merge into one responses.parquet; resume works across "
                                   "them. 1: one engine in this process.")
    ray: str = setting("", help="Evaluate on Ray (aimokit.evaluate_ray): '' off; 'local' a Ray started here; 'auto' "
                                "the cluster this machine belongs to; or host:port of its head. `workers` engines "
                                "are Ray actors, each holding engine.tensor_parallel_size GPUs, on one queue.")
    retries: int = setting(2, help="Ray: times a problem goes back to the queue after the engine holding it died, "
                                   "and restarts allowed per engine; past that the problem is named as failed.")
    limit: int = setting(0, help="Only the first N problems; 0: all.")
    z: float = setting(1.96, help="The confidence level of the intervals, as a normal quantile (1.96: 95%).")
    curve_draws: int = setting(200, help="Random subsets per k for the maj@k curve.")
    seed: int = setting(0, help="The curve's draws and majority-vote tie breaks.")

    def __post_init__(self) -> None:
        if (self.samples < 1 or self.concurrency < 0 or self.tool_room < -1 or self.write_every_s < 0
                or self.limit < 0 or self.curve_draws < 1 or self.z <= 0 or self.workers < 1 or self.retries < 0):
            raise ConfigError("eval: need samples >= 1, concurrency >= 0, tool_room >= -1, write_every_s >= 0, "
                              "limit >= 0, curve_draws >= 1, z > 0, workers >= 1 and retries >= 0")

    def room_for(self, concurrency: int) -> int:
        """`tool_room` at this many in flight: its own value, or a quarter of `concurrency` at -1."""
        return self.tool_room if self.tool_room >= 0 else concurrency // 4

    def in_flight(self, max_num_seqs: int) -> dict[str, int]:
        """`solve_stream`'s concurrency and tool_room on an engine that holds `max_num_seqs` at once."""
        width = self.concurrency or max_num_seqs
        return {"concurrency": width, "tool_room": self.room_for(width)}


def need_answers(problems: list[Problem]) -> None:
    missing = [p.id for p in problems if p.answer is None]
    if missing:
        raise ProblemFileError(f"evaluation needs answers; problems {missing[:5]} have none "
                               "(add an 'answer' column)")


def resume(out: Path, problems: list[Problem]) -> tuple[Path, pl.DataFrame, set[str], list[Problem]]:
    """(the responses file, what it holds, the problem ids it holds, the problems still to do) of an
    evaluation into `out`: every path resumes the same way, and refuses problems without answers."""
    need_answers(problems)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESPONSES
    done = responses.read(path) if path.exists() else responses.empty()
    seen = set(done["problem_id"].to_list())
    todo = [p for p in problems if p.id not in seen]
    if seen:
        log.info("resuming: %d problems already evaluated, %d to go", len(seen), len(todo))
    return path, done, seen, todo


def result_rows(r: Any) -> list[dict[str, Any]]:
    """A solved problem's response rows: graded by the kernel's own equivalence (math-verify), the batch's
    wall time shared by its samples, the answer the run chose and what GenSelect did."""
    return responses.rows(r.id, r.gold, r.seconds / max(1, len(r.responses)), r.responses, is_correct, r.answer,
                          r.genselect)


def run_evaluation(cfg: KernelConfig, problems: list[Problem], out: Path, ev: EvalConfig,
                   engine: Any = None, take: Callable[[], Problem | None] | None = None,
                   written: Callable[[list[str]], None] | None = None) -> pl.DataFrame:
    """Solve every problem K times and store each response; resumes from an existing file. A worker of
    `run_workers` draws its problems with `take()` (the shared queue, asked the moment the engine has room;
    None: no more) instead of `problems`, and reports with `written(ids)` the ones its file now holds."""
    from .engine import create_engine
    from .solver import Solver, SolveError

    path, done, seen, todo = resume(out, problems)
    pending = todo if take is None else (p for p in iter(take, None) if p.id not in seen)
    # all K samples for every problem: pass@k and maj@k need them
    cfg = dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, early_stop=[], early_stop_agree=0))
    t0 = time.monotonic()
    engine = engine or create_engine(cfg.engine)
    start_s = time.monotonic() - t0
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=cfg.engine.max_model_len)
    frames = [done]
    finished: list = []  # results not written yet
    last_write = time.monotonic()

    def write() -> None:
        nonlocal last_write
        _append(frames, finished, path)
        if written is not None and finished:
            written([r.id for r in finished])  # in the file: done, whatever happens to this worker next
        finished.clear()
        last_write = time.monotonic()

    evaluated = len(seen)

    def on_result(r) -> None:
        nonlocal evaluated
        finished.append(r)
        evaluated += 1
        if time.monotonic() - last_write >= ev.write_every_s:
            write()
            log.info("evaluated %d/%d problems (%d responses)", evaluated, len(problems), sum(f.height for f in frames))

    try:
        left = solver.solve_stream(pending, on_result, samples=ev.samples, keep_responses=True,
                                   **ev.in_flight(cfg.engine.max_num_seqs))
        finished.extend(left)  # none without a deadline; kept should the engine stop early
    except SolveError as e:  # keep what was finished and what the failure left, then stop: the engine is gone
        finished.extend(e.results)
        raise
    finally:
        write()
        solver.close()
    df = pl.concat(frames)
    meta = {"model": cfg.engine.model, "lora": cfg.engine.lora, "samples": ev.samples,
            "engine_start_s": round(start_s, 2), "wall_s": round(time.monotonic() - t0, 2)}
    atomic_write(out / "eval_meta.json", json.dumps(meta, indent=2))
    return df


class WorkerError(AimokitError, RuntimeError):
    """An evaluation worker failed; what every worker finished is merged all the same."""


def run_workers(cfg: KernelConfig, problems: list[Problem], out: Path, ev: EvalConfig) -> pl.DataFrame:
    """`ev.workers` evaluations side by side, one engine each on its own GPUs (`worker_devices`); their files merge
    into out/responses.parquet. Why processes: one engine per GPU is the simplest way to use every GPU of a
    machine, each worker is the plain one-engine evaluation, and a worker that dies takes only its own engine with
    it. Problems are not dealt out ahead: each worker takes the next one from the run's queue (work_queue, the
    one Ray's path uses, served here over a local socket) when its engine has room, so a worker that drew long
    problems, or whose engine never started, leaves the rest to the others. A worker that dies sends the problems
    it held but had not written back to the queue (`ev.retries` times each) and a replacement starts while work
    is left. A rerun resumes: problems already merged, or in a worker's file, are not solved again."""
    import subprocess
    import sys

    from .work_queue import WorkQueue, serve

    need_answers(problems)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESPONSES
    shared = out / "workers"
    shards = sorted((d for d in shared.iterdir() if d.is_dir()), key=lambda d: d.name) if shared.is_dir() else []
    done = _merge(path, shards)
    seen = set(done["problem_id"].to_list())
    todo = [p for p in problems if p.id not in seen]
    t0 = time.monotonic()
    devices = worker_devices(ev.workers, cfg.engine.tensor_parallel_size, _gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    queue = WorkQueue([{"id": p.id, "problem": p.problem, "answer": p.answer} for p in todo], ev.retries)
    address, key, stop = serve(queue)
    procs: dict[str, tuple[Path, Any, Any, str | None]] = {}
    failed: list[Path] = []
    restarts = ev.retries * ev.workers

    def start(slot: int, name: str) -> None:
        shard = shared / name
        shard.mkdir(parents=True, exist_ok=True)
        if shard not in shards:
            shards.append(shard)
        atomic_write(shard / "kernel.toml", cfg.to_toml())
        atomic_write(shard / "eval.json", json.dumps(dataclasses.asdict(dataclasses.replace(
            ev, workers=1, problems="", limit=0))))
        env = dict(os.environ, AIMOKIT_QUEUE=f"{address[0]}:{address[1]}", AIMOKIT_QUEUE_KEY=key.hex(),
                   AIMOKIT_WORKER=name)
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices[slot]
        log_file = open(shard / "worker.log", "a")
        proc = subprocess.Popen([sys.executable, "-m", "aimokit.evaluate", str(shard)], env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)
        procs[name] = (shard, log_file, proc, devices[slot] if devices else None)

    slots = {}
    for i in range(min(ev.workers, len(todo))):  # never more workers than problems
        slots[str(i)] = i
        start(i, str(i))
    try:
        while procs:
            time.sleep(0.2)
            for name, (shard, log_file, proc, _) in list(procs.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del procs[name]
                log_file.close()
                if rc == 0:
                    continue
                failed.append(shard / "worker.log")
                back = queue.lost(name, f"exit status {rc} (see {shard / 'worker.log'})")
                log.warning("evaluation worker %s exited with status %d; %d problem(s) back in the queue", name, rc,
                            len(back))
                if restarts > 0 and queue.replace(name):
                    restarts -= 1
                    slot = slots[name]
                    slots[f"{name}r"] = slot
                    start(slot, f"{name}r")
    finally:
        stop()
        for _, log_file, proc, _ in procs.values():
            proc.kill()
            log_file.close()
    df = _merge(path, shards)
    atomic_write(out / "eval_meta.json", json.dumps({
        "model": cfg.engine.model, "lora": cfg.engine.lora, "samples": ev.samples, "workers": ev.workers,
        "wall_s": round(time.monotonic() - t0, 2)}, indent=2))
    _check_workers(failed, len(slots), [p.id for p in todo], df, path)
    return df


def _check_workers(failed: list[Path], started: int, todo: list[str], df: pl.DataFrame, path: Path) -> None:
    """Failed workers are an error only when problems were left unevaluated; when the others took every problem,
    the run is whole, and the failed ones are named in a warning."""
    if not failed:
        return
    missing = len(set(todo) - set(df["problem_id"].to_list()))
    what = f"{len(failed)} of {started} evaluation workers failed (see {', '.join(map(str, failed))})"
    if missing:
        raise WorkerError(f"{what}; {missing} problems are not evaluated. What the workers finished is in {path}, "
                          "and a rerun resumes from it")
    log.warning("%s; the others evaluated every problem", what)


def worker_devices(workers: int, per_worker: int, gpus: int, visible: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES for each worker: its own `per_worker` GPUs (the engine's tensor_parallel_size) out of
    the ones this process sees, which are the parent's CUDA_VISIBLE_DEVICES when set (`CUDA_VISIBLE_DEVICES=2,3
    evaluate --workers 2` gives GPUs 2 and 3, not 0 and 1). None: no GPUs (CPU workers share the machine)."""
    if gpus <= 0:
        return None
    ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(gpus)]
    ids = ids[:gpus]
    if workers * per_worker > len(ids):
        raise ConfigError(f"evaluate --workers {workers} with engine.tensor_parallel_size = {per_worker} needs "
                          f"{workers * per_worker} GPUs; {len(ids)} are visible: lower --workers, or use "
                          f"--workers {max(1, len(ids) // per_worker)}")
    return [",".join(ids[i * per_worker:(i + 1) * per_worker]) for i in range(workers)]


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def _merge(path: Path, shards: list[Path]) -> pl.DataFrame:
    """out/responses.parquet and every worker's file as one, each (problem, sample) once; written atomically."""
    files = [f for f in [path, *(s / RESPONSES for s in shards)] if f.exists()]
    frames = [responses.read(f) for f in files] or [responses.empty()]
    df = pl.concat(frames).unique(subset=["problem_id", "sample"], keep="first", maintain_order=True)
    if files:
        responses.write(path, df)
    return df


def _worker(shard: Path) -> None:
    """One worker of `run_workers`: the plain evaluation, into its own folder, of the problems it takes from
    the run's queue (its address and key in the environment)."""
    from .serving import setup_logging
    from .work_queue import connect

    setup_logging()
    cfg = KernelConfig.load(shard / "kernel.toml")
    ev = EvalConfig.from_dict(json.loads((shard / "eval.json").read_text()))
    host, port = os.environ["AIMOKIT_QUEUE"].rsplit(":", 1)
    queue = connect((host, int(port)), bytes.fromhex(os.environ["AIMOKIT_QUEUE_KEY"]))
    name = os.environ["AIMOKIT_WORKER"]
    queue.seen_at(name, f"pid {os.getpid()}")

    def take() -> Problem | None:
        p = queue.take(name)
        return None if p is None else Problem(p["id"], p["problem"], p["answer"])

    def written(ids: list[str]) -> None:
        for pid in ids:
            queue.finish(name, pid, None)

    run_evaluation(cfg, [], shard, ev, take=take, written=written)


def _append(frames: list[pl.DataFrame], results: list, path: Path) -> None:
    records = [row for r in results for row in result_rows(r)]
    if records:
        frames.append(responses.frame(records))
        responses.write(path, pl.concat(frames))


if __name__ == "__main__":  # a worker of run_workers: python -m aimokit.evaluate SHARD_DIR
    import sys

    _worker(Path(sys.argv[1]))
