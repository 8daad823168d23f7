"""The submission notebook, generated from kernels/*.py so the code exists once.

Cell 1 finds the kit's inputs under /kaggle/input (by marker file, so the
mount layout does not matter), installs the wheelhouse with --no-index and
points the kernel at its config; cell 2 is the kernel source, verbatim.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from .. import vocab
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SOURCE_MARKER = "aimokit-source.txt"  # at the root of the source dataset
WHEELS_MARKER = "aimokit-wheels.txt"  # at the root of the wheelhouse dataset
ADAPTERS_MARKER = "aimokit-adapters.json"  # the adapters dataset's manifest, at its root
COMPILE_CACHE_MARKER = "aimokit-compile-caches.json"  # the compile-cache dataset's manifest, at its root

SETUP_CELL = '''\
import glob, os, subprocess, sys, time
os.environ.setdefault("AIMOKIT_T0", str(time.time()))  # the time budget starts with the notebook
INPUT = os.environ.setdefault("AIMOKIT_INPUT", "/kaggle/input")  # configs name inputs as $AIMOKIT_INPUT/...

def find(marker):
    hits = sorted(glob.glob(os.path.join(INPUT, "**", marker), recursive=True))
    return os.path.dirname(hits[0]) if hits else None

source = find({source_marker!r})
if source is None:
    raise SystemExit("aimokit source dataset not attached: add it to the notebook's inputs")
adapters = find({adapters_marker!r})
if adapters:
    os.environ["AIMOKIT_ADAPTERS"] = adapters  # engine.lora = "$AIMOKIT_ADAPTERS/<name>"
caches = find({compile_cache_marker!r})
if caches:
    os.environ["AIMOKIT_COMPILE_CACHE"] = caches  # engine.vllm.compile_cache = "$AIMOKIT_COMPILE_CACHE/<kernel>"
# Every input the config names, found by its source under whichever layout Kaggle mounts (aimokit/mounts.py,
# loaded by path: nothing is installed yet), and said where; a missing one fails now, in seconds, with a
# listing of /kaggle/input, not as five hours of fallback answers.
import importlib.util
REQUIRED = {required!r}
if any(want.startswith("kaggle:") for want in REQUIRED):
    _spec = importlib.util.spec_from_file_location("aimokit_mounts", os.path.join(source, "src", "aimokit", "mounts.py"))
    mounts = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(mounts)
missing = []
for want in REQUIRED:
    try:
        if want.startswith("kaggle:"):
            path, how = mounts.resolve(want, INPUT)
        else:
            path, how = os.path.expandvars(want), "as written"
            if "$" in path or not os.path.exists(path):
                raise LookupError(f"{{want}}: {{path}} does not exist")
        print("input", want, "->", path, f"({{how}})")
    except LookupError as e:  # mounts.MountError is one
        missing.append(str(e))
if missing:
    raise RuntimeError("inputs missing:\\n" + "\\n".join(missing) + "\\nAttach the source that provides each one "
                       "(the ship config's [[kernels]] entry), then push again.")
wheels = find({wheels_marker!r})
whl = sorted(glob.glob(os.path.join(wheels, "*.whl"))) if wheels else []
if whl:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--find-links", wheels, *whl], check=True)
# A config that runs vLLM with no fallback must find it now (wheels installed above, or the image's own with
# --no-wheels), not as five hours of a slower backend: the first cell fails with the reason.
if {needs_vllm!r}:
    import importlib.util
    if importlib.util.find_spec("vllm") is None:
        raise RuntimeError("the kernel's config runs vLLM (engine.backend = 'vllm', no engine.fallback) but vllm is "
                           + ("not installed: the wheels dataset installed without it" if whl else
                              "not in this image and no wheels dataset is attached (push without --no-wheels)"))
os.environ["AIMOKIT_SRC"] = os.path.join(source, "src")
os.environ["AIMOKIT_SOURCE"] = source  # files a config ships in the source dataset (solver.selector)
os.environ.setdefault("AIMOKIT_CONFIG", os.path.join(source, {config_name!r}))
# gpt-oss's vocabulary, for openai-harmony offline (the wheels dataset carries it), checked before it is used
NEEDS_VOCAB = {needs_vocab!r}  # the config speaks harmony
vocab = find({vocab_file!r})
if vocab and "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
    import hashlib
    with open(os.path.join(vocab, {vocab_file!r}), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != {vocab_sha256!r}:
        raise RuntimeError(f"{{vocab}}/{vocab_file} has sha256 {{digest}}, not tiktoken's {vocab_sha256}: the file "
                           "is damaged; rebuild and push the wheels dataset (build.py push)")
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = vocab
elif NEEDS_VOCAB and "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
    print("warning: no {vocab_file} among the inputs and TIKTOKEN_ENCODINGS_BASE unset: openai-harmony cannot "
          "load offline, so harmony renders as text (solver.harmony_renderer = 'auto'; the log says so). "
          "Attach the wheels dataset, which carries the file.")
print("aimokit source:", source, "| wheels:", wheels, "| adapters:", adapters, "| compile cache:", caches, "| config:", os.environ["AIMOKIT_CONFIG"])
'''


def make_notebook(kernel_file: Path, title: str, config_name: str = "kernel.toml",
                  required: list[str] | None = None, needs_vocab: bool = False,
                  needs_vllm: bool = False) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        new_markdown_cell(f"# {title}\n\nGenerated by aimokit from `{kernel_file.name}`; edit that file, not this notebook."),
        new_code_cell(SETUP_CELL.format(source_marker=SOURCE_MARKER, wheels_marker=WHEELS_MARKER,
                                        adapters_marker=ADAPTERS_MARKER, config_name=config_name,
                                        compile_cache_marker=COMPILE_CACHE_MARKER,
                                        required=list(required or []), vocab_file=vocab.FILE,
                                        vocab_sha256=vocab.SHA256, needs_vocab=needs_vocab,
                                        needs_vllm=needs_vllm)),
        new_code_cell(kernel_file.read_text()),
    ]
    for i, cell in enumerate(nb.cells):  # fixed ids: the same source gives the same notebook, byte for byte
        cell.id = f"aimokit-{i}"
    nbformat.validate(nb)
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
