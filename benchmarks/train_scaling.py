"""Training on one GPU, then on N through `accelerate launch`: the kit's own `train`, side by side on one machine.

    python benchmarks/train_scaling.py --model /root/dsm7b --method sft --runs 1,fsdp2:2,fsdp2:4,zero3:2,zero3:4 \
        --length 8192 --steps 10 --out DIR
    python benchmarks/train_scaling.py --model /root/dsm7b --method sft --finetune full --dtype float32 \
        --runs 1,fsdp2:4 --length 4096 --steps 6 --out DIR

A run is `1` (one process on GPU 0, no launcher) or `LAUNCHER:N` (N processes with configs/accelerate/LAUNCHER.yaml:
fsdp2 is FSDP2, zero3 DeepSpeed ZeRO-3, cpu-2 plain DDP on GPUs). Each trains the same data with batch 1 a GPU and
gradient checkpointing, LoRA r16 on the seven projections (or every weight with --finetune full):
- sft: random-text traces of --length tokens with two masked tool results each (`sft_speed.traces`);
- dpo: random pairs (prompt --length/4, chosen and rejected 3/8 each), both sequences through the policy.
The global batch grows with N (weak scaling, as a user adds GPUs). tok/s counts the tokens an optimizer step
trains over every process and accumulation step (`--grad-accum`, 4 as configs/train-dpo.toml sets it), with
the tokens of a row counted as the trainer tokenizes it; `steady_tok_s` uses the median step time after the
first two steps (the train summary's `step_seconds`), which leaves out compilation, NCCL set-up and allocator
warm-up; `tok_s` is over the whole train time, the end-of-training checkpoint included. Scaling is steady tok/s against the first run. Peak memory is rank 0's. A run that fails (out of
memory, for the full fine-tune on one GPU) is recorded with its reason and the next one runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
from pathlib import Path

from common import ROOT, versions, write
from sft_speed import traces


def run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    """The run in its own process group, so a timeout stops the launcher and every rank it started."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            f.write(f"\nTimeout: stopped after {timeout:.0f} s\n")
            return 124


def pairs(tokenizer, length: int, n: int, seed: int = 0) -> list[dict]:
    """DPO pairs of random text: prompt length/4 tokens, chosen and rejected 3/8 each."""
    rng = random.Random(seed)

    def text(k: int) -> str:
        return tokenizer.decode([rng.randrange(1000, 40000) for _ in range(k)])

    return [{"prompt": text(length // 4), "chosen": text(length * 3 // 8), "rejected": text(length * 3 // 8)}
            for _ in range(n)]


def tokens_per_row(tokenizer, rows: list[dict], method: str, max_length: int) -> float:
    """The mean tokens a row trains on, as the trainer tokenizes it (random text re-encodes to other counts than
    the ids it was decoded from): a trace; for dpo, prompt + chosen and prompt + rejected, each cut at max_length."""
    from aimokit.sft_data import tokenize_trace

    if method == "sft":
        counts = [len(tokenize_trace(tokenizer, r["prompt"], r["response"], r["tool_spans"], max_length)["input_ids"])
                  for r in rows]
    else:
        counts = [sum(min(max_length, len(tokenizer(r["prompt"] + r[k])["input_ids"])) for k in ("chosen", "rejected"))
                  for r in rows]
    return round(sum(counts) / len(counts), 1)


def reason(log: Path) -> str:
    tail = log.read_text(errors="replace")[-4000:] if log.is_file() else ""
    for marker in ("OutOfMemoryError", "CUDA out of memory", "ModuleNotFoundError", "ImportError", "Timeout"):
        if marker in tail:
            line = next((x for x in tail.splitlines() if marker in x), marker)
            return line.strip()[:300]
    return tail[-600:]


def main() -> None:
    import polars as pl
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--method", choices=["sft", "dpo"], default="sft")
    ap.add_argument("--finetune", choices=["lora", "full"], default="lora")
    ap.add_argument("--dtype", default="bfloat16", help="the weights' dtype (float32: fp32 master weights, bf16 compute)")
    ap.add_argument("--runs", default="1,fsdp2:2")
    ap.add_argument("--length", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--grad-accum", type=int, default=4, help="gradient_accumulation_steps (4: configs/train-dpo.toml's)")
    ap.add_argument("--report-only", action="store_true", help="rebuild the report from the run folders in --out")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plans = []
    for spec in a.runs.split(","):
        name, _, n = spec.partition(":")
        plans.append((spec, int(n or 1) if name != "1" else 1, None if name == "1" else name))
    most = max(p[1] for p in plans)
    tok = AutoTokenizer.from_pretrained(a.model)
    data = out / f"{a.method}-data.parquet"
    n = a.steps * most * a.grad_accum  # every sequence of every step once
    rows = traces(tok, a.length, n) if a.method == "sft" else pairs(tok, a.length, n)
    if not a.report_only:
        pl.DataFrame(rows).write_parquet(data)
    sets = {"method": a.method, "model": a.model, "train_file": str(data), "val_file": "", "max_length": a.length + 64,
            "per_device_train_batch_size": 1, "max_steps": a.steps, "gradient_checkpointing": "true",
            "logging_steps": 1, "save_steps": 10_000, "resume": "false", "learning_rate": 1e-5,
            "finetune": a.finetune, "dtype": a.dtype, "gradient_accumulation_steps": a.grad_accum,
            "target_modules": '["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]'}
    seq_tokens = tokens_per_row(tok, rows, a.method, a.length + 64)
    tag = a.tag or f"{a.method}_{a.finetune}"
    report = {"model": Path(a.model).name, "method": a.method, "finetune": a.finetune, "dtype": a.dtype,
              "length": a.length, "tokens_per_sequence": seq_tokens, "gradient_accumulation_steps": a.grad_accum,
              "steps": a.steps, "runs": [], **versions()}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    base = None
    for spec, procs, launcher in plans:
        work = out / f"{tag}-{spec.replace(':', 'x')}"
        args = [f"--set={k}={v}" for k, v in {**sets, "output_dir": str(work)}.items()]
        cmd = [sys.executable] if launcher is None else [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "configs" / "accelerate" / f"{launcher}.yaml"), "--num_processes", str(procs)]
        cmd += [str(ROOT / "build.py"), "train", *args]
        e = dict(env, CUDA_VISIBLE_DEVICES=",".join(str(i) for i in range(procs)))
        if launcher is None:
            e["ACCELERATE_MIXED_PRECISION"] = "bf16"  # what the launchers' configs set: bf16 compute, as they run it
        log = out / f"{work.name}.log"
        summary = work / "train_summary.json"
        rc = (0 if summary.is_file() else 1) if a.report_only else run(cmd, e, log, a.timeout)
        entry = {"run": spec, "processes": procs, "returncode": rc}
        if rc == 0 and summary.is_file():
            s = json.loads(summary.read_text())
            c = s["config"]  # what ran: sequences per optimizer step = processes x batch x accumulation
            per_step = seq_tokens * s["processes"] * c["per_device_train_batch_size"] * c["gradient_accumulation_steps"]
            steps_s = s.get("step_seconds") or []
            steady = statistics.median(steps_s[2:]) if len(steps_s) > 2 else None
            entry.update(steps=s["steps"], train_s=s["seconds"], setup_s=s["setup_s"],
                         tok_s=round(s["steps"] * per_step / s["seconds"], 1),
                         steady_step_s=round(steady, 3) if steady else None,
                         steady_tok_s=round(per_step / steady, 1) if steady else None,
                         peak_gpu_gib=s.get("peak_gpu_gib"))
            if entry["steady_tok_s"]:
                base = base or entry["steady_tok_s"]
                entry["scaling"] = round(entry["steady_tok_s"] / base, 2)
        else:
            entry["reason"] = reason(log)
        print(f"-- {entry}", flush=True)
        report["runs"].append(entry)
        write(out, f"train_scaling_{tag}", report)


if __name__ == "__main__":
    sys.exit(main())
