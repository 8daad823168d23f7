"""`evaluate --workers N` against one engine, side by side on one machine: what spreading problems over GPUs gives.

    python benchmarks/eval_workers.py --model /root/dsm7b --lora /root/dsm7b_lora --workers 2 --out DIR

Two `build.py evaluate` runs of the same problems and samples start together on disjoint GPUs: one engine on
GPU 0 (`--workers 1`), and N worker engines on GPUs 1..N (`--workers N`, its CUDA_VISIBLE_DEVICES=1..N, which
the workers split one GPU each). Running both at once costs the time of one and keeps the comparison on the
same machine at the same moment. With random weights no sample writes code or an answer, so each sample
runs to its token limit: equal work per problem. Reported per run: wall time (engine start included), the
slowest worker's engine start, tokens, and tokens per second over the time after the engine start (the part
that scales); the speed-up at equal samples is the N-worker rate over the one-engine rate. The N-worker run's
merged responses.parquet is checked to hold every (problem, sample) once.

With --ray the two runs are the plain one-engine `evaluate` and `evaluate --ray` with one engine actor (a local
Ray started by the run), one after the other on GPU 0: the ratio of their rates after the engine start is
Ray's overhead (its start, the actor's scheduling, every result sent back to the driver).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, versions, write


def launch(out: Path, problems: Path, a, workers: int, gpus: str, ray: bool = False
           ) -> tuple[subprocess.Popen, float, object]:
    sets = {"engine.model": a.model, "engine.lora": a.lora, "engine.dtype": a.dtype, "engine.vllm.enforce_eager": str(a.enforce_eager).lower(),
            "engine.vllm.gpu_memory_utilization": a.gpu_memory_utilization, "engine.max_model_len": 4096, "engine.max_num_seqs": a.concurrency,
            "engine.vllm.max_lora_rank": 16, "solver.max_rounds": 1, "solver.max_tokens_per_round": a.tokens,
            "solver.max_tokens_total": a.tokens}
    cmd = [sys.executable, str(ROOT / "build.py"), "evaluate", "--problems", str(problems), "--samples",
           str(a.samples), "--workers", str(workers), "--out", str(out), "--concurrency", str(a.concurrency),
           *(["--ray"] if ray else []), *[f"--set={k}={v}" for k, v in sets.items() if v != ""]]
    log = open(out.with_suffix(".log"), "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": gpus,
           "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN", "aimokit-bench-" + "0" * 24)}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.monotonic(), log


def result(out: Path, workers: int, rc: int, wall: float, ray: bool = False) -> dict:
    import polars as pl

    entry = {"workers": workers, "ray": ray, "returncode": rc, "wall_s": round(wall, 1)}
    path = out / "responses.parquet"
    if rc != 0 or not path.is_file():
        entry["log_tail"] = out.with_suffix(".log").read_text(errors="replace")[-2000:]
        return entry
    df = pl.read_parquet(path)
    metas = ([json.loads((out / "workers" / str(i) / "eval_meta.json").read_text()) for i in range(workers)]
             if workers > 1 and not ray else [json.loads((out / "eval_meta.json").read_text())])
    start = max(m["engine_start_s"] for m in metas)
    gen = max(m["wall_s"] - m["engine_start_s"] for m in metas)  # the slowest worker's time after its start
    tokens = int(df["tokens"].sum())
    entry.update(responses=df.height, unique=df.unique(subset=["problem_id", "sample"]).height, tokens=tokens,
                 engine_start_s=round(start, 1), generation_s=round(gen, 1), tok_s=round(tokens / gen, 1),
                 tok_s_with_start=round(tokens / wall, 1))
    if "ray_init_s" in metas[0]:  # Ray's own start apart: what is left is the per-problem cost of the actor
        entry.update(ray_init_s=metas[0]["ray_init_s"],
                     tok_s_after_ray_init=round(tokens / (gen - metas[0]["ray_init_s"]), 1))
    return entry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora", default="")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (and no compile): a quick smoke run")
    ap.add_argument("--ray", action="store_true", help="plain evaluate, then evaluate --ray with one actor, on GPU 0")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    out = Path(a.out).resolve() / "eval_workers"
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (ROOT / "src/aimokit/data/aime24.jsonl").read_text().splitlines()]
    problems = out / "problems.jsonl"
    copies = [{**r, "id": f"{r['id']}-{k}"} for k in range(-(-a.problems // len(rows))) for r in rows]
    problems.write_text("".join(json.dumps(r) + "\n" for r in copies[: a.problems]))
    report = {"model": Path(a.model).name, "lora": bool(a.lora), "problems": a.problems, "samples": a.samples,
              "tokens_per_sample": a.tokens, "concurrency": a.concurrency, "runs": [], **versions()}
    if a.ray:
        return ray_overhead(out, problems, a, report)
    runs = [(1, "0"), (a.workers, ",".join(str(i) for i in range(1, a.workers + 1)))]
    started = [(w, out / f"workers{w}", *launch(out / f"workers{w}", problems, a, w, g)) for w, g in runs]
    ended: dict[int, float] = {}
    while len(ended) < len(started):  # each run's own end, whichever finishes first
        for i, (_, _, proc, _, _) in enumerate(started):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.5)
    for i, (w, run_out, proc, t0, log) in enumerate(started):
        log.close()
        report["runs"].append(result(run_out, w, proc.returncode, ended[i] - t0))
    one, many = report["runs"]
    if one.get("tok_s") and many.get("tok_s"):
        report["speedup"] = round(many["tok_s"] / one["tok_s"], 2)
        report["speedup_with_start"] = round(one["wall_s"] / many["wall_s"], 2)
    print(f"-- eval workers: {report}", flush=True)
    write(out, "eval_workers", report)


def ray_overhead(out: Path, problems: Path, a, report: dict) -> None:
    """Plain, then Ray, on the same GPU: one engine each, the same problems and samples."""
    for name, ray in (("plain", False), ("ray", True)):
        proc, t0, log = launch(out / name, problems, a, 1, "0", ray=ray)
        rc = proc.wait()
        log.close()
        report["runs"].append({"run": name, **result(out / name, 1, rc, time.monotonic() - t0, ray=ray)})
        print(f"-- {name}: {report['runs'][-1]}", flush=True)
    plain, ray = report["runs"]
    if plain.get("tok_s") and ray.get("tok_s"):
        report["ray_over_plain"] = round(ray["tok_s"] / plain["tok_s"], 3)
        report["ray_over_plain_with_start"] = round(ray["tok_s_with_start"] / plain["tok_s_with_start"], 3)
        report["ray_over_plain_after_ray_init"] = round(ray["tok_s_after_ray_init"] / plain["tok_s"], 3)
    print(f"-- ray overhead: {report}", flush=True)
    write(out, "eval_ray", report)


if __name__ == "__main__":
    sys.exit(main())
