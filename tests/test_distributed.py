"""Training under `accelerate launch` with 2 gloo processes on CPU: the kit writes no distributed code, and the loss
of each step matches one process trained on the same global batch (configs/accelerate/cpu-2.yaml)."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from layout import ROOT
from tiny_llama import save_tiny_llama

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoTokenizer

    from aimokit.models import embedded_default_model

    root = tmp_path_factory.mktemp("dist")
    save_tiny_llama(root / "m", AutoTokenizer.from_pretrained(embedded_default_model()))
    n = 16
    pl.DataFrame({"prompt": [f"What is {i} + {i}?" for i in range(n)],
                  "chosen": [f"It is \\boxed{{{2 * i}}}." for i in range(n)],
                  "rejected": [f"Perhaps, after a long detour, it is \\boxed{{{2 * i + 1}}}." for i in range(n)]}
                 ).write_parquet(root / "pairs.parquet")
    return root


def _train(root, method: str, processes: int, out: str) -> list[float]:
    per_device = 4 // processes  # the same global batch of 4 either way
    sets = [f"method={method}", f"model={root / 'm'}", f"train_file={root / 'pairs.parquet'}", f"output_dir={root / out}",
            f"per_device_train_batch_size={per_device}", "max_steps=3", "logging_steps=1", "save_steps=100",
            "learning_rate=1e-3", "lr_scheduler_type=constant", "max_length=64", "dtype=float32", "val_file="]
    args = [a for s in sets for a in ("--set", s)]
    if processes == 1:
        cmd = [sys.executable, str(ROOT / "build.py"), "train", *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "configs" / "accelerate" / "cpu-2.yaml"), str(ROOT / "build.py"), "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((root / out / "train_summary.json").read_text())
    assert summary["processes"] == processes and summary["steps"] == 3
    return [h["loss"] for h in map(json.loads, (root / out / "log.jsonl").read_text().splitlines()) if "loss" in h]


@pytest.mark.parametrize("method", ["dpo", "sft"])
def test_two_gloo_processes_train_with_the_loss_of_one_at_the_same_global_batch(setup, method):
    one = _train(setup, method, 1, f"{method}-1")
    two = _train(setup, method, 2, f"{method}-2")
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=1e-3, abs=1e-4), (one, two)
    assert (setup / f"{method}-2" / "adapter" / "adapter_config.json").is_file()
