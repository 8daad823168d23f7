"""`build.py probe-image` / `build.py output --probe`: record what a Kaggle machine shape's image has.

The wheelhouse is resolved against an image list (wheelhouse.py); the only
faithful one is taken on the machine itself. The probe is kernels/probe_image.py
pushed as a script kernel on the submission kernel's machine shape, internet
off, with the same inputs attached (so the /kaggle/input layout it records is
the submission's). Its output lands in datasets/wheels/image-<shape>.txt and
image-<shape>.probe.json, which `[wheels] image` then names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..io import atomic_write, fresh_dir
from .build import BuildError
from .config import KernelEntry, ShipConfig
from .metadata import KernelSpec
from .wheelhouse import WheelhouseError, read_image_list

PROBE_FILE = "kernels/probe_image.py"


def shape_name(entry: KernelEntry) -> str:
    """`nvidiah100` for NvidiaH100: the suffix of the image list's file name."""
    return (entry.machine_shape or "default").lower()


def probe_ref(cfg: ShipConfig, entry: KernelEntry) -> str:
    return cfg.ref(f"aimokit-probe-{shape_name(entry)}")


def build_probe(root: Path, cfg: ShipConfig, entry: KernelEntry, out: Path) -> Path:
    """build/kernels/probe-<shape>/: the probe script and its kernel-metadata.json."""
    d = fresh_dir(out / "kernels" / f"probe-{shape_name(entry)}")
    shutil.copy(root / PROBE_FILE, d / "probe_image.py")
    spec = KernelSpec(id=probe_ref(cfg, entry), title=f"aimokit probe {shape_name(entry)}", code_file="probe_image.py",
                      kernel_type="script", is_private=True, dataset_sources=cfg.source_refs(entry),
                      competition_sources=[entry.competition] if entry.competition else [],
                      model_sources=entry.model_sources, machine_shape=entry.machine_shape,
                      docker_image_pinning_type=entry.docker_image_pinning_type)
    (d / "kernel-metadata.json").write_text(json.dumps(spec.metadata(), indent=2) + "\n")
    return d


def save_probe_output(fetched: Path, dest: Path, entry: KernelEntry, docker_image: str = "") -> tuple[list[Path], str]:
    """Copy the probe's image list and JSON into `dest` (datasets/wheels/), checked first; returns them and a summary.

    `docker_image` is the image Kaggle reports the probe ran on (its kernel settings): recorded in the JSON as
    `docker_image`, it is what the submission kernel is pinned to (build.kernel_image)."""
    listing, probe = fetched / "image.txt", fetched / "image-probe.json"
    if not listing.is_file() or not probe.is_file():
        raise BuildError(f"the probe's output in {fetched} lacks image.txt or image-probe.json; has the probe "
                         "kernel completed? (`build.py status --probe`)")
    try:
        packages = read_image_list(listing)
        facts = json.loads(probe.read_text())
    except (WheelhouseError, json.JSONDecodeError) as e:
        raise BuildError(f"the probe's output is damaged: {e}") from None
    dest.mkdir(parents=True, exist_ok=True)
    saved = [dest / f"image-{shape_name(entry)}.txt", dest / f"image-{shape_name(entry)}.probe.json"]
    shutil.copy(listing, saved[0])
    if docker_image:
        facts["docker_image"] = docker_image
    atomic_write(saved[1], json.dumps(facts, indent=2) + "\n")
    return saved, (f"{len(packages)} packages on Python {facts.get('python')} "
                   f"({facts.get('nvidia_smi') or 'no GPU'}), image {docker_image or 'not reported by Kaggle'}; "
                   f"point [wheels] image at {saved[0]}")
