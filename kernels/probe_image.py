"""Record what a Kaggle machine shape has: the image list the wheelhouse is resolved against.

`build.py probe-image` pushes this as a kernel on the competition's machine
shape with internet off; `build.py output` fetches what it writes into
datasets/wheels/image-<shape>.txt (and the probe's JSON beside it). It needs
nothing but the standard library, and runs anywhere as a plain script too.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable: {e}"


def layout(root, depth=7, limit=5000):
    """The folder tree under /kaggle/input to `depth` levels (a model's version folder is 6 deep), files
    counted, not listed: what `build.py preflight` resolves the kernel's inputs against."""
    out = {}
    if not os.path.isdir(root):
        return out
    base = root.rstrip(os.sep).count(os.sep)
    for d, dirs, files in os.walk(root):
        level = d.count(os.sep) - base
        if level >= depth:
            dirs[:] = []
        out[os.path.relpath(d, root)] = len(files)
        if len(out) >= limit:
            break
    return out


def main():
    freeze = run([sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"])
    try:
        import torch

        cuda = {"torch": torch.__version__, "cuda": torch.version.cuda,
                "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    except Exception as e:  # no torch, or no GPU
        cuda = {"error": repr(e)}
    work = os.getcwd()
    usage = shutil.disk_usage(work)
    probe = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "libc": "-".join(platform.libc_ver()),
        "executable": sys.executable,
        "cuda": cuda,
        "nvidia_smi": run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]),
        # the newest CUDA the driver runs, as nvidia-smi's banner says it ("CUDA Version: 13.0")
        "driver_cuda": (re.findall(r"CUDA Version:\s*([\d.]+)", run(["nvidia-smi"])) or [""])[0],
        "disk_free_gb": round(usage.free / 1e9, 1),
        "cwd": work,
        "kaggle_input": layout(os.environ.get("AIMOKIT_INPUT", "/kaggle/input")),
        "packages": len([l for l in freeze.splitlines() if "==" in l]),
        # where it ran: Kaggle's machines set KAGGLE_* variables (names kept, values never: some are tokens)
        "kaggle": bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")),
        "kaggle_env": sorted(k for k in os.environ if k.startswith("KAGGLE_")),
        "image_build": {k: os.environ[k] for k in ("BUILD_DATE", "GIT_COMMIT") if k in os.environ},
    }
    with open("image.txt", "w") as f:
        f.write(f"# pip list --format=freeze on Python {probe['python']}, {probe['nvidia_smi'] or 'no GPU'}\n")
        f.write(freeze + "\n")
    with open("image-probe.json", "w") as f:
        json.dump(probe, f, indent=2)
    print(json.dumps({k: v for k, v in probe.items() if k != "kaggle_input"}, indent=2))


if __name__ == "__main__":
    main()
