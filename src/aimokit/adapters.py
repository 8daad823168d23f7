"""LoRA adapter checks, done before minutes of engine start-up are spent.

vLLM rejects adapters whose rank exceeds `max_lora_rank` or that target
modules it cannot patch, and a mismatched base model produces garbage rather
than an error; all three are caught here with a message that says the fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import AimokitError

# Module names vLLM can serve LoRA on for decoder-only Llama/Qwen/Mistral-style models.
VLLM_LORA_MODULES = {
    "q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj",
    "gate_proj", "up_proj", "down_proj", "gate_up_proj",
}


# The ranks vLLM's max_lora_rank accepts (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class AdapterError(AimokitError, ValueError):
    """A LoRA adapter directory cannot be served."""


def read_adapter_config(path: str | Path) -> dict:
    p = Path(path)
    cfg_file = p / "adapter_config.json"
    if not cfg_file.is_file():
        raise AdapterError(f"{p}: no adapter_config.json; save the adapter with peft's save_pretrained")
    try:
        return json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise AdapterError(f"{cfg_file}: invalid JSON: {e}") from e


def adapter_rank(path: str | Path) -> int:
    return int(read_adapter_config(path).get("r", 0))


def validate_adapter(path: str | Path, base_model: str | Path | None = None) -> dict:
    """Check files, rank, target modules and (when given) the base model's shape."""
    p = Path(path)
    cfg = read_adapter_config(p)
    if not (p / "adapter_model.safetensors").is_file():
        raise AdapterError(
            f"{p}: no adapter_model.safetensors; save with safe_serialization=True (peft's default)"
        )
    rank = int(cfg.get("r", 0))
    if rank not in VLLM_LORA_RANKS:
        raise AdapterError(f"{p}: LoRA rank {rank} is not one vLLM serves; use 8, 16, 32, 64, 128 or 256")
    targets = cfg.get("target_modules") or []
    if isinstance(targets, str):
        raise AdapterError(
            f"{p}: target_modules is a regex ({targets!r}); list module names so vLLM can map them"
        )
    bad = sorted(set(targets) - VLLM_LORA_MODULES)
    if bad:
        raise AdapterError(
            f"{p}: target modules {bad} are not served by vLLM LoRA; use a subset of "
            f"{sorted(VLLM_LORA_MODULES)}"
        )
    if cfg.get("modules_to_save"):
        raise AdapterError(f"{p}: modules_to_save={cfg['modules_to_save']} is not supported by vLLM LoRA")
    if base_model is not None:
        check_base_model(p, cfg, Path(base_model))
    return cfg


def check_base_model(adapter: Path, cfg: dict, base: Path) -> None:
    """Compare the adapter's tensor shapes with the base model's config."""
    base_cfg_file = base / "config.json"
    if not base_cfg_file.is_file():
        return
    base_cfg = json.loads(base_cfg_file.read_text())
    hidden = base_cfg.get("hidden_size")
    if hidden is None:
        return
    from safetensors import safe_open

    layers = base_cfg.get("num_hidden_layers")
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
        for name in names:
            if "q_proj.lora_A" in name:
                in_features = f.get_slice(name).get_shape()[1]
                if in_features != hidden:
                    raise AdapterError(
                        f"{adapter}: trained for a base model with hidden size {in_features}, but "
                        f"{base} has {hidden} (adapter base: {cfg.get('base_model_name_or_path')!r}); "
                        "train the adapter on this base model or point engine.model at its base"
                    )
                break
    depth = max((int(m.group(1)) for n in names if (m := re.search(r"\.layers\.(\d+)\.", n))), default=-1) + 1
    if layers is not None and depth > layers:
        raise AdapterError(
            f"{adapter}: has LoRA weights for {depth} layers, but {base} has {layers} "
            f"(adapter base: {cfg.get('base_model_name_or_path')!r}); train the adapter on this base model"
        )
