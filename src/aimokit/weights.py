"""A model folder checked against itself before it is shipped or attached: files, sizes, layers.

Why: a model uploaded to Kaggle from a half-finished download or copy loads for minutes on the GPU and then
fails (or worse, a missing shard is noticed only by vLLM after the serve limit). Everything here reads only
headers: the safetensors index's file list, each file's header (its tensors' byte ranges must end where the
file ends), the index's total size, and the layer count the tensor names imply against `num_hidden_layers`.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file; ValueError when the file is not one or is cut short."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError(f"{path.name} is {path.stat().st_size} bytes: not a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER:
            raise ValueError(f"{path.name}: header length {n} is not a safetensors header")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path.name}: damaged safetensors header ({e})") from None
    header["__header_bytes__"] = 8 + n
    return header


def check_model_dir(model_dir: str | Path) -> tuple[str, str]:
    """('ok' | 'fail' | 'skip', what was found) for a Hugging Face model folder."""
    d = Path(model_dir)
    if not (d / "config.json").is_file():
        return "fail", f"{d} has no config.json: not a model folder"
    config = json.loads((d / "config.json").read_text())
    config = config.get("text_config", config)  # multimodal configs nest the language model's
    index_path = d / "model.safetensors.index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        files = sorted(set(index.get("weight_map", {}).values()))
        total = index.get("metadata", {}).get("total_size")
    elif (d / "model.safetensors").is_file():
        files, total = ["model.safetensors"], None
    else:
        found = sorted(p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".gguf"))
        return "skip", f"not checked: no safetensors weights in {d} ({', '.join(found) or 'none at all'})"
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        return "fail", f"{d}: the index names {len(missing)} files that are not there: {missing[:5]}"
    data_bytes, layers = 0, set()
    for name in files:
        path = d / name
        try:
            header = safetensors_header(path)
        except ValueError as e:
            return "fail", str(e)
        ends = [t["data_offsets"][1] for k, t in header.items() if isinstance(t, dict) and "data_offsets" in t]
        expected = header["__header_bytes__"] + max(ends, default=0)
        if path.stat().st_size != expected:
            return "fail", (f"{name} is {path.stat().st_size} bytes but its header describes {expected}: cut short "
                            "or padded; copy it again")
        data_bytes += max(ends, default=0)
        layers |= {int(m.group(1)) for k in header if (m := re.search(r"\.layers\.(\d+)\.", k))}
    if total is not None and abs(int(total) - data_bytes) > 0.01 * max(data_bytes, 1):
        return "fail", f"the index's total_size {total} differs from the {data_bytes} bytes of tensors in its files"
    want = config.get("num_hidden_layers")
    if want is not None and layers and len(layers) != int(want):
        return "fail", f"config.json says {want} layers, the weights hold {len(layers)}: a shard is from another model"
    return "ok", (f"{len(files)} safetensors files, {data_bytes / 1e9:.2f} GB of tensors"
                  + (f", {len(layers)} layers as config.json says" if layers else ""))
