#!/usr/bin/env bash
# On the GPU machine (no network): install what a Kaggle kernel gets, the way it gets it, then build the
# 7B-shaped model and LoRA the benchmarks use (AIMOKIT_BENCH_7B=0: not), with AIMOKIT_BENCH_MOE=LAYERS the
# reduced-depth gpt-oss-shaped MoE, with AIMOKIT_BENCH_FULL=1 gpt-oss-120b's config and tokenizer (no weights). The bundle is `benchmarks/gpu_rehearsal.py prepare --bench [--with-train] [--with-ray]`
# split into .gpu/rehearsal/pNN, carried one part per call and collected in /root/parts (docs/shipping.md).
# Source it: it exports PYTHONPATH.
set -e
mkdir -p /root/parts
cp .gpu/rehearsal/p* /root/parts/ 2>/dev/null || true
if [[ ! -f /root/.aimokit-wheels ]]; then
  cat /root/parts/p* > /root/rehearsal.tar
  tar xf /root/rehearsal.tar -C /root
  # the built wheels dataset, as the notebook installs it: every wheel, no index, no resolver
  python3 -m pip install -q --no-index --no-deps /root/rehearsal/input/aimokit-wheels/*.whl
  for extra in train-wheels ray-wheels; do  # trl and datasets for the DPO benchmarks; ray for evaluate --ray's
    if [[ -d /root/rehearsal/$extra ]] && compgen -G "/root/rehearsal/$extra/*.whl" > /dev/null; then
      python3 -m pip install -q --no-index --no-deps /root/rehearsal/$extra/*.whl
    fi
  done
  touch /root/.aimokit-wheels
fi
export PYTHONPATH=$PWD/src
export VLLM_LOGGING_LEVEL=WARNING TOKENIZERS_PARALLELISM=false
[[ -f /root/rehearsal/input/o200k-harmony/o200k_base.tiktoken ]] && export TIKTOKEN_ENCODINGS_BASE=/root/rehearsal/input/o200k-harmony
python3 - <<'PY'
import sys, time
sys.path.insert(0, "benchmarks")
from pathlib import Path
import os
from common import make_gpt_oss, make_lora, make_model
t = time.time()
tok = Path("/root/rehearsal/input/smollm2-135m-instruct")
if os.environ.get("AIMOKIT_BENCH_7B", "1") != "0":  # the 7B-shaped model and its LoRA (most benchmarks)
    m = make_model(Path("/root/dsm7b"), tok)
    make_lora(Path("/root/dsm7b_lora"), m)
    print(f"model and LoRA ready in {time.time() - t:.0f} s", flush=True)
if os.environ.get("AIMOKIT_BENCH_FULL"):  # gpt-oss-120b's config and tokenizer, no weights (gpt_oss_full.py)
    from common import make_gpt_oss_full
    make_gpt_oss_full(Path("/root/gptoss120b"), Path("/root/rehearsal/input/o200k-harmony"))
if os.environ.get("AIMOKIT_BENCH_MOE"):  # the gpt-oss-shaped MoE of the harmony benchmark
    t = time.time()
    make_gpt_oss(Path("/root/gptoss"), tok, layers=int(os.environ["AIMOKIT_BENCH_MOE"]))
    if os.environ.get("AIMOKIT_BENCH_MOE_BF16"):  # the fallback where MXFP4 kernels fail: bf16 experts
        make_gpt_oss(Path("/root/gptoss_bf16"), tok, layers=int(os.environ["AIMOKIT_BENCH_MOE_BF16"]), mxfp4=False)
    print(f"gpt-oss-shaped MoE ready in {time.time() - t:.0f} s", flush=True)
PY
