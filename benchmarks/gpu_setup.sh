#!/usr/bin/env bash
# On the GPU machine (no network): reassemble the wheelhouse carried in parts (.gpu/parts/pN, one per call,
# collected in /root/parts), install it with --no-index into /root/site, build the 7B-shaped model and LoRA.
# Source it: it exports PYTHONPATH.
set -e
mkdir -p /root/parts
cp .gpu/parts/p* /root/parts/ 2>/dev/null || true
if [[ ! -f /root/site/.done ]]; then
  cat /root/parts/p* > /root/bundle.tar
  mkdir -p /root/b && tar xf /root/bundle.tar -C /root/b
  python3 -m pip install -q --no-index --no-deps --no-compile --target /root/site /root/b/wh/*.whl /root/b/wh2/*.whl
  touch /root/site/.done
fi
export PYTHONPATH=/root/site:$PWD/src
export VLLM_LOGGING_LEVEL=WARNING TOKENIZERS_PARALLELISM=false
python3 - <<'PY'
import sys, time
sys.path.insert(0, "benchmarks")
from pathlib import Path
from common import make_lora, make_model
t = time.time()
m = make_model(Path("/root/dsm7b"), Path("/root/b/tok"))
make_lora(Path("/root/dsm7b_lora"), m)
print(f"model and LoRA ready in {time.time() - t:.0f} s", flush=True)
PY
