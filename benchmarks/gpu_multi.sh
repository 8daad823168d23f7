#!/usr/bin/env bash
# The multi-GPU session of docs/benchmarks.md, one stage per call on a 4-GPU machine once the bench parts
# (.gpu/bench/pNN, see gpu_setup.sh) are in /root/parts:
#   a: install (and DeepSpeed from .gpu/ds), build the 7B-shaped model; side by side: the kernel at TP 1 (GPU 0)
#      and TP 2 (GPUs 1-2), a GRPO step with vLLM colocated (GPU 3)
#   b: SFT with LoRA at 8k tokens: 1 GPU, FSDP2 and ZeRO-3 on 2 and 4
#   c: evaluate --workers 2 against one engine (side by side), then DPO with LoRA on 1, 2 and 4 GPUs
#   d: the full fine-tune (fp32 master weights) with FSDP2 on 4 GPUs; then side by side the kernel at TP 2
#      without vLLM's custom all-reduce (TP 2 failed with it on 4 x H200, 2026-11-26: docs/benchmarks.md) and at TP 1
#   e: the kernel at TP 4, custom all-reduce off
# .gpu/ds holds DeepSpeed, which PyPI ships as source only: `DS_BUILD_OPS=0 pip wheel --no-deps
# --no-build-isolation deepspeed==0.19.8` (a pure-Python wheel; ZeRO-3 with torch's AdamW needs no compiled op)
# plus `pip download` of hjson, py-cpuinfo, msgpack, ninja and einops for cp312 manylinux.
# Each stage's figures and logs go to $OUT/<stage>.tgz.
set -u
stage=$1
cd "$(dirname "$0")/.."
source benchmarks/gpu_setup.sh >/dev/null
set +e
if [[ -d .gpu/ds && ! -f /root/.aimokit-ds ]]; then
  python3 -m pip install -q --no-index --no-deps .gpu/ds/*.whl && touch /root/.aimokit-ds
fi
R=/root/mgpu/$stage
mkdir -p "$R"
B="python3 benchmarks"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1
case $stage in
  a)
    (CUDA_VISIBLE_DEVICES=0 timeout 450 $B/kernel_tp.py --model /root/dsm7b --tp 1 --out "$R" > "$R/tp1.out" 2>&1) &
    (CUDA_VISIBLE_DEVICES=1,2 timeout 450 $B/kernel_tp.py --model /root/dsm7b --tp 2 --out "$R" > "$R/tp2.out" 2>&1) &
    (CUDA_VISIBLE_DEVICES=3 timeout 450 $B/grpo_step.py --model /root/dsm7b --steps 4 --use-vllm --out "$R" \
      > "$R/grpo.out" 2>&1) &
    wait ;;
  b)
    timeout 560 $B/train_scaling.py --model /root/dsm7b --method sft --runs 1,fsdp2:2,fsdp2:4,zero3:2,zero3:4 \
      --length 8192 --steps 6 --timeout 150 --out "$R" > "$R/sft.out" 2>&1 ;;
  c)
    timeout 330 $B/eval_workers.py --model /root/dsm7b --lora /root/dsm7b_lora --workers 2 --problems 16 \
      --samples 32 --tokens 1024 --concurrency 128 --out "$R" > "$R/eval.out" 2>&1
    timeout 230 $B/train_scaling.py --model /root/dsm7b --method dpo --runs 1,fsdp2:2,fsdp2:4 --length 4096 \
      --steps 6 --timeout 100 --out "$R" > "$R/dpo.out" 2>&1 ;;
  d)
    timeout 230 $B/train_scaling.py --model /root/dsm7b --method sft --finetune full --dtype float32 \
      --runs fsdp2:4 --length 2048 --steps 4 --timeout 215 --out "$R" > "$R/full.out" 2>&1
    X='{"disable_custom_all_reduce": true}'
    (CUDA_VISIBLE_DEVICES=0,1 timeout 330 $B/kernel_tp.py --model /root/dsm7b --tp 2 --extra "$X" --out "$R" \
      > "$R/tp2.out" 2>&1) &
    (CUDA_VISIBLE_DEVICES=2,3 timeout 330 $B/kernel_tp.py --model /root/dsm7b --tp 1 --out "$R" > "$R/tp1.out" 2>&1) &
    wait ;;
  e)
    timeout 500 $B/kernel_tp.py --model /root/dsm7b --tp 4 --extra '{"disable_custom_all_reduce": true}' \
      --out "$R" > "$R/tp4.out" 2>&1 ;;
esac
# whatever a timeout left running: every process on a GPU
nvidia-smi --query-compute-apps=pid --format=csv,noheader | xargs -r kill -9 2>/dev/null
pkill -9 -f 'build.py|kernel_tp.py|grpo_step.py|train_scaling.py|eval_workers.py|aimokit.evaluate|submission.py'
grep -h -- "^-- \|^== " "$R"/*.out 2>/dev/null | cut -c1-1500
find "$R" -name '*.log' -size +200k -exec sh -c 'tail -c 100000 "$1" > "$1.tail" && rm "$1"' _ {} \;
tar czf "$OUT/$stage.tgz" --exclude='*.parquet' --exclude='*.safetensors' --exclude='checkpoints' \
  --exclude='adapter' --exclude='model' -C /root/mgpu "$stage"
ls -la "$OUT"
