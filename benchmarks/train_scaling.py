"""SFT with LoRA on the 7B-shaped model: one GPU, then N GPUs through `accelerate launch`, the kit's own `train`.

    python benchmarks/train_scaling.py --model /root/dsm7b --gpus 2 --length 8192 --steps 6 --out DIR

Each run trains the same traces (random text, two masked tool results each, `sft_speed.traces`) with batch 1 a
GPU, gradient checkpointing, LoRA r16 on the seven projections: one process on GPU 0; then N processes with
configs/accelerate/fsdp2.yaml (FSDP2) and with configs/accelerate/cpu-2.yaml (plain DDP on GPUs; the same file
trains on CPUs in CI). tok/s = steps x processes x length / the trainer's train time; the scaling is against
the one-GPU run; peak memory is rank 0's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import ROOT, versions, write
from sft_speed import traces


def run(cmd: list[str], env: dict[str, str], log: Path) -> int:
    with open(log, "w") as f:
        return subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=900).returncode


def main() -> None:
    import polars as pl
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--launchers", default="fsdp2,cpu-2")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "traces.parquet"
    pl.DataFrame(traces(AutoTokenizer.from_pretrained(a.model), a.length, a.steps * a.gpus)).write_parquet(data)
    sets = {"method": "sft", "model": a.model, "train_file": str(data), "val_file": "", "max_length": a.length + 64,
            "per_device_train_batch_size": 1, "max_steps": a.steps, "gradient_checkpointing": "true",
            "logging_steps": 1, "save_steps": 10_000, "resume": "false", "learning_rate": 1e-4,
            "target_modules": '["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]'}
    report = {"model": Path(a.model).name, "length": a.length, "steps": a.steps, "runs": [], **versions()}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    plans = [("1 GPU", 1, [sys.executable])]
    for name in a.launchers.split(","):
        plans.append((name, a.gpus, [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                                     str(ROOT / "configs" / "accelerate" / f"{name}.yaml"), "--num_processes",
                                     str(a.gpus)]))
    base = None
    for name, procs, launcher in plans:
        work = out / name.replace(" ", "-")
        args = [f"--set={k}={v}" for k, v in {**sets, "output_dir": str(work)}.items()]
        cmd = [*launcher, str(ROOT / "build.py"), "train", *args]
        e = dict(env, CUDA_VISIBLE_DEVICES=",".join(str(i) for i in range(procs)))
        rc = run(cmd, e, out / f"{work.name}.log")
        entry = {"run": name, "processes": procs, "returncode": rc}
        summary = work / "train_summary.json"
        if rc == 0 and summary.is_file():
            s = json.loads(summary.read_text())
            tok_s = s["steps"] * s["processes"] * a.length / s["seconds"]
            base = base or tok_s
            entry.update(steps=s["steps"], train_s=s["seconds"], tok_s=round(tok_s, 1),
                         scaling=round(tok_s / base, 2), peak_gpu_gib=s.get("peak_gpu_gib"))
        else:
            entry["log_tail"] = (out / f"{work.name}.log").read_text()[-1500:]
        print(f"-- {entry}", flush=True)
        report["runs"].append(entry)
        write(out, "train_scaling", report)


if __name__ == "__main__":
    sys.exit(main())
