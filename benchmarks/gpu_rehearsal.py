"""The GPU rehearsal of a Kaggle submission: what `build.py push` would ship, run on the GPU machine lent here.

Two halves (docs/shipping.md):

  python benchmarks/gpu_rehearsal.py prepare [--with-train]   # here: LoRA, build, pack in parts
  python benchmarks/gpu_rehearsal.py prepare --bench [--with-train] [--with-ray]   # the benchmarks' bundle
  python3 benchmarks/gpu_rehearsal.py device [--source-from-checkout]   # there: lay out, run, measure

`prepare` builds the datasets exactly as a push would (the wheelhouse resolved against the image list in
configs/ship.toml, the source, the adapters) plus the embedded model standing in for the user's model
upload, lays them out under input/ as Kaggle mounts them, and splits one tar into 56 MiB parts under
.gpu/rehearsal/ (a call carries at most 64 MiB). With --bench it packs only what benchmarks/gpu_setup.sh and
the benchmarks read: the wheelhouse, the embedded model's tokenizer files (not its weights: the benchmark
models are built on the GPU), gpt-oss's tokenizer (vocab.write_hf_tokenizer) and the optional training and Ray
wheels. `device` reassembles them in /kaggle/input, runs the
generated notebook's cells with the machine's stock Python (which has torch, as Kaggle's image does): the
setup cell installs the wheelhouse with --no-index, the kernel cell starts vLLM with the LoRA and answers
the problems through the AIMO-3 gateway, which writes submission.parquet. It prints one JSON line of
measurements (install time, engine start, answers) and copies the outputs to $OUT.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / ".gpu" / "rehearsal"  # git-ignored
STAGE = ROOT / ".gpu" / "rehearsal-stage"
COMP = "ai-mathematical-olympiad-progress-prize-3"
PART_BYTES = 56 << 20


def make_lora(model_dir: Path, out: Path) -> Path:
    """A PEFT LoRA (r=16 on q/v/o) with non-zero B, so it visibly changes what the model writes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (out / "adapter_config.json").exists():
        return out
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    return out


TRAIN_REQUIREMENTS = ["trl==1.16.0", "datasets"]  # the DPO/SFT benchmarks add these; peft is the image's (0.21.0)
RAY_REQUIREMENTS = ["ray==2.60.0"]  # evaluate --ray's overhead benchmark (aimokit[ray]; the kernel never needs it)


def train_wheelhouse(ship, kernel_wheels: Path, dest: Path, requirements: list[str] = TRAIN_REQUIREMENTS) -> dict:
    """The training stack's wheels, resolved over the image plus the kernel's wheelhouse (both count as installed)."""
    from dataclasses import replace

    from aimokit.kaggle.wheelhouse import build_wheelhouse, canonical, read_image_list

    image = read_image_list(ship.wheels.image)
    shipped = json.loads((kernel_wheels / "wheelhouse.json").read_text())["shipped"]
    image.update({canonical(n): v for n, v in (s.split("==") for s in shipped)})
    cfg = replace(ship.wheels, requirements=requirements, replace=[], ignore_pins=[])
    return build_wheelhouse(cfg, image, dest, "image + the kernel's wheelhouse")


def prepare(n_problems: int = 5, with_train: bool = False, bench: bool = False, with_ray: bool = False) -> None:
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "helpers")]  # a script: pytest's pythonpath is not set
    from aimokit.kaggle.build import build_all
    from aimokit.kaggle.config import ShipConfig
    from aimokit.models import embedded_default_model
    from aimokit.problems import load_problems
    from layout import lay_out_competition
    model = embedded_default_model()
    make_lora(model, ROOT / "runs" / "rehearsal" / "lora")
    t = time.time()
    ship = ShipConfig.load(ROOT / "configs" / "ship-rehearsal.toml")
    built = build_all(ROOT, ship, ROOT / "build-rehearsal")
    print(f"built in {time.time() - t:.0f} s", flush=True)
    extras = {"train-wheels": TRAIN_REQUIREMENTS if with_train else None, "ray-wheels": RAY_REQUIREMENTS if with_ray else None}
    for folder, reqs in extras.items():  # for the GPU benchmarks (docs/benchmarks.md), not for Kaggle
        if reqs:
            train_wheelhouse(ship, built["datasets"]["wheels"], ROOT / "build-rehearsal" / folder, reqs)
    if STAGE.exists():
        shutil.rmtree(STAGE)
    inp = STAGE / "input"
    for name, d in built["datasets"].items():
        if not bench or name == "wheels":
            shutil.copytree(d, inp / f"aimokit-{name}")
    weights = shutil.ignore_patterns("*.safetensors", "*.bin", "*.gguf") if bench else None  # only its tokenizer
    shutil.copytree(model, inp / "smollm2-135m-instruct", ignore=weights)
    if bench:  # gpt-oss's tokenizer, built here from the checked vocabulary, for the full-size benchmark's model
        from aimokit.vocab import ship, write_hf_tokenizer

        write_hf_tokenizer(inp / "o200k-harmony")
        ship(inp / "o200k-harmony")  # and the vocabulary openai-harmony reads offline (TIKTOKEN_ENCODINGS_BASE)
    for folder, reqs in extras.items():
        if reqs:
            shutil.copytree(ROOT / "build-rehearsal" / folder, STAGE / folder)
    aime = ROOT.parent / "shared" / "data" / "aime24.jsonl"
    ps = load_problems(aime if aime.is_file() else ROOT / "src" / "aimokit" / "data" / "aime24.jsonl")[:n_problems]
    if not bench:  # the rehearsal's competition and notebook
        lay_out_competition(inp / COMP, [{"id": p.id, "problem": p.problem} for p in ps])
        (STAGE / "answers.json").write_text(json.dumps({p.id: p.answer for p in ps}))
        shutil.copy(next(built["kernels"][0].glob("*.ipynb")), STAGE / "submission.ipynb")
    if PARTS.exists():
        shutil.rmtree(PARTS)
    PARTS.mkdir(parents=True)
    bundle = ROOT / ".gpu" / "rehearsal.tar"
    with tarfile.open(bundle, "w") as tar:
        tar.add(STAGE, arcname="rehearsal")
    with open(bundle, "rb") as f:
        i = 0
        while chunk := f.read(PART_BYTES):
            (PARTS / f"p{i:02d}").write_bytes(chunk)
            i += 1
    print(f"{bundle.stat().st_size / 2**20:.0f} MiB in {i} parts under {PARTS}", flush=True)
    bundle.unlink()


def device() -> None:
    """On the GPU machine: parts collected in /root/parts by earlier calls."""
    out = Path(os.environ.get("OUT", "/tmp/rehearsal-out"))
    parts = sorted(Path("/root/parts").glob("p*"))
    t0 = time.time()
    with open("/root/rehearsal.tar", "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    with tarfile.open("/root/rehearsal.tar") as tar:
        tar.extractall("/root", filter="data")
    stage = Path("/root/rehearsal")
    kaggle = Path("/kaggle")
    if kaggle.exists():
        shutil.rmtree(kaggle)
    (kaggle / "working").mkdir(parents=True)
    shutil.move(str(stage / "input"), kaggle / "input")
    if "--source-from-checkout" in sys.argv:  # this checkout's kit over the packed one: new code, same wheels
        shipped = kaggle / "input" / "aimokit-source" / "src" / "aimokit"
        shutil.rmtree(shipped)
        shutil.copytree(ROOT / "src" / "aimokit", shipped, ignore=shutil.ignore_patterns("__pycache__"))
    unpack_s = time.time() - t0
    nb = json.loads((stage / "submission.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    # the two cells in one interpreter, as one notebook kernel runs them; a timestamp between them
    script = cells[0] + "\nprint('REHEARSAL_INSTALLED', time.time(), flush=True)\n" + "\n".join(cells[1:])
    (kaggle / "working" / "notebook.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMOKIT_", "PYTHONPATH"))}
    env.update(AIMOKIT_INPUT="/kaggle/input", VLLM_LOGGING_LEVEL="WARNING", TOKENIZERS_PARALLELISM="false")
    freeze_before = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True,
                                   text=True).stdout
    t1 = time.time()
    proc = subprocess.run([sys.executable, "notebook.py"], cwd=kaggle / "working", env=env, capture_output=True,
                          text=True, timeout=560)
    t2 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / "notebook.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    installed = next((float(l.split()[1]) for l in proc.stdout.splitlines() if l.startswith("REHEARSAL_INSTALLED")),
                     None)
    result = {"python": sys.version.split()[0], "returncode": proc.returncode, "unpack_s": round(unpack_s, 1),
              "install_s": round(installed - t1, 1) if installed else None, "notebook_s": round(t2 - t1, 1),
              "image_packages": len(freeze_before.splitlines())}
    working = kaggle / "working"
    for name in ("submission.parquet", "kernel_summary.json"):
        if (working / name).exists():
            shutil.copy(working / name, out / name)
    if (working / "kernel_summary.json").exists():
        summary = json.loads((working / "kernel_summary.json").read_text())
        result.update({k: summary.get(k) for k in ("engine_start_s", "engine_starts", "lora", "model", "tokens",
                                                   "elapsed_s", "problems")})
    if (working / "submission.parquet").exists():
        import pyarrow.parquet as pq

        table = pq.read_table(working / "submission.parquet").to_pylist()
        answers = json.loads((stage / "answers.json").read_text())
        result["submission"] = table
        result["correct"] = sum(str(r["answer"]) == str(answers.get(str(r["id"]))) for r in table)
    print("REHEARSAL " + json.dumps(result), flush=True)
    (out / "rehearsal.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(with_train="--with-train" in sys.argv, bench="--bench" in sys.argv, with_ray="--with-ray" in sys.argv)
    else:
        device()
