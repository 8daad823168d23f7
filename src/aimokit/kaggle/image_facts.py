"""What the probe measured about the Kaggle image, held against what the build ships.

Why: a wheelhouse resolved for an assumed image fails on Kaggle in the first cell (a Python it has no
wheels for, torch built for a CUDA the driver cannot run), and a kernel created later than the probe
can land on a newer image than the one measured. The probe (`build.py probe-image`, then
`build.py output --probe`) writes `image-<shape>.probe.json` beside the image list; these functions
read it: the Python, the driver's CUDA, and the Docker image Kaggle ran the probe on, which the
submission kernel then pins (`docker_image` in kernel-metadata.json).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The oldest Linux driver each CUDA toolkit release needs (NVIDIA's CUDA release notes, table 3): used when a
# probe recorded the driver version but not the CUDA version nvidia-smi prints.
DRIVER_FOR_CUDA = [((13, 0), 580), ((12, 9), 575), ((12, 8), 570), ((12, 6), 560), ((12, 5), 555),
                   ((12, 4), 550), ((12, 3), 545), ((12, 2), 535), ((12, 1), 530), ((12, 0), 525),
                   ((11, 8), 520)]
IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/-]*(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?")


def probe_facts(root: Path, image_list: str) -> tuple[Path, dict[str, Any] | None]:
    """(where the probe's JSON is, its content or None) for the `[wheels] image` list."""
    path = (root / image_list).with_suffix(".probe.json")
    if not path.is_file():
        return path, None
    try:
        return path, json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e}); fetch it again with `build.py output --probe`") from None


def probed_docker_image(facts: dict[str, Any] | None) -> str:
    """The image Kaggle reported running the probe on ('' when none was recorded)."""
    image = str((facts or {}).get("docker_image") or "")
    return image if IMAGE_RE.fullmatch(image) else ""


def _version(text: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def driver_cuda(facts: dict[str, Any] | None) -> tuple[tuple[int, int] | None, str]:
    """(the newest CUDA the image's driver runs, how that is known)."""
    facts = facts or {}
    got = _version(str(facts.get("driver_cuda") or ""))
    if got:
        return got, f"nvidia-smi reports CUDA {got[0]}.{got[1]}"
    m = re.search(r",\s*(\d+)\.\d+(?:\.\d+)?\s*$", str(facts.get("nvidia_smi") or "").splitlines()[0]
                  if facts.get("nvidia_smi") else "")
    if m:
        driver = int(m.group(1))
        for cuda, needs in DRIVER_FOR_CUDA:
            if driver >= needs:
                return cuda, f"driver {driver} runs CUDA up to {cuda[0]}.{cuda[1]}"
        return (11, 0), f"driver {driver} is older than CUDA 11.8 needs"
    return None, "the probe recorded no GPU driver"


def wheel_cuda(shipped: list[str], facts: dict[str, Any] | None) -> tuple[tuple[int, int] | None, str]:
    """(the CUDA the shipped torch, or the image's, was built for; where that was read)."""
    pins = dict(s.split("==", 1) for s in shipped if "==" in s)
    local = re.search(r"\+cu(\d+)(\d)$", pins.get("torch", ""))
    if local:
        return (int(local.group(1)), int(local.group(2))), f"the shipped torch {pins['torch']}"
    for name in ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11", "nvidia-cuda-runtime"):
        if name in pins and _version(pins[name]):
            return _version(pins[name]), f"the shipped {name} {pins[name]}"
    image_torch = ((facts or {}).get("cuda") or {}).get("cuda")
    if "torch" not in pins and _version(str(image_torch or "")):
        return _version(str(image_torch)), f"the image's torch (built for CUDA {image_torch})"
    return None, "no CUDA build among the shipped wheels or in the probe"


def check_cuda(shipped: list[str], facts: dict[str, Any] | None) -> tuple[str, str]:
    """('ok' | 'warn' | 'fail' | 'skip', the reason): the wheelhouse's CUDA against the image's driver.

    A newer CUDA major than the driver runs cannot load; a newer minor of the same major runs under
    CUDA's minor-version compatibility, short of the newest features (a warning)."""
    built, where = wheel_cuda(shipped, facts)
    runs, how = driver_cuda(facts)
    if built is None or runs is None:
        return "skip", f"not checked: {where if built is None else how}"
    said = f"{where} needs CUDA {built[0]}.{built[1]}; {how}"
    if built[0] > runs[0]:
        return "fail", (f"{said}: it cannot load there. Fix: ship a torch built for CUDA {runs[0]}.x (the "
                        "wheels' requirements or wheels.replace), or probe a machine shape with a newer driver")
    if built > runs:
        return "warn", f"{said}: it runs under minor-version compatibility only"
    return "ok", said


def check_python(python_version: str, facts: dict[str, Any] | None) -> tuple[str, str]:
    probed = ".".join(str((facts or {}).get("python", "")).split(".")[:2])
    if not probed:
        return "skip", "not checked: the probe recorded no Python"
    if probed != python_version:
        return "fail", (f"[wheels] python_version = {python_version!r} but the probed image runs Python "
                        f"{facts['python']}: set python_version = {probed!r}, or probe the image the kernel runs on")
    return "ok", f"Python {facts['python']} on the image, wheels for {python_version}"


def check_platform(platforms: list[str], facts: dict[str, Any] | None) -> tuple[str, str]:
    """The image's machine and glibc against the wheel platform tags the build accepts."""
    facts = facts or {}
    machine, libc = str(facts.get("machine") or ""), str(facts.get("libc") or "")
    if not machine:
        return "skip", "not checked: the probe recorded no machine"
    wrong = [p for p in platforms if not p.endswith(machine)]
    if wrong:
        return "fail", f"the image is {machine}, but wheels.platforms has {wrong}"
    glibc = _version(libc.split("-", 1)[-1]) if libc.startswith("glibc") else None
    newest = max((_version(m.group(1).replace("_", ".")) for p in platforms
                  if (m := re.match(r"manylinux_(\d+_\d+)_", p))), default=None)
    if glibc and newest and newest > glibc:
        return "fail", (f"wheels.platforms accepts manylinux_{newest[0]}_{newest[1]}, but the image has "
                        f"{libc}: a wheel for a newer glibc fails to load; drop those tags")
    return "ok", f"{machine}, {libc or 'libc unknown'}"
