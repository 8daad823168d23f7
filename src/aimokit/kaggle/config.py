"""The ship config: what `build.py build` bundles and how `build.py push` sends it.

One typed object, loaded from TOML (configs/ship.toml), shared by the CLI and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, from_dict, read_toml


@dataclass
class PushOptions:
    version_note: str = "aimokit push"
    attempts: int = 4  # per request, the first included
    backoff_s: float = 2.0  # doubled after each failure, with jitter
    call_timeout_s: float = 300.0  # the client sets no HTTP timeout; a hung call counts as a failure
    upload_timeout_s: float = 4 * 3600.0  # one dataset's uploads (a wheelhouse is gigabytes)
    ready_timeout_s: float = 1800.0  # how long to wait for Kaggle to process a dataset version
    poll_s: float = 10.0
    public: bool = False


PLACEHOLDER_USER = "your-kaggle-user"  # what configs/ship.toml ships with


@dataclass
class WheelsConfig:
    slug: str = "aimokit-wheels"
    title: str = "aimokit offline wheelhouse"
    # What the Kaggle image lacks; vLLM's torch pin must match the image's torch.
    requirements: list[str] = field(default_factory=lambda: ["vllm==0.26.0"])
    python_version: str = "3.12"
    # Wheel platform tags the image accepts: glibc 2.39 on the probed images (image-*.probe.json).
    # pip does not read manylinux2014 (some wheels, cuda-tile's, carry only that) into manylinux_2_17.
    platforms: list[str] = field(default_factory=lambda: [
        "manylinux2014_x86_64", *[f"manylinux_2_{v}_x86_64" for v in range(17, 40)]])
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    # The target image's packages (`pip list --format=freeze`, as `build.py probe-image` records it),
    # relative to the checkout: what the image has at a compatible version is not shipped.
    # Empty: no image list, the whole closure ships.
    image: str = ""
    # Image packages to ship anyway, over the image's version (one fix for a conflict).
    replace: list[str] = field(default_factory=list)
    # Image packages that stand in for a requirement's exact pin (`numba==0.65.0` met by the image's
    # 0.68.0): the other fix, where the pin is stricter than the code needs. Recorded in wheelhouse.json.
    ignore_pins: list[str] = field(default_factory=list)


@dataclass
class AdaptersConfig:
    slug: str = "aimokit-adapters"
    title: str = "aimokit LoRA adapters"
    paths: list[str] = field(default_factory=list)
    base_model: str = ""  # a local copy of the base model, to check shapes against


@dataclass
class KernelEntry:
    name: str = "submission"
    slug: str = "aimokit-submission"
    title: str = "aimokit submission"
    file: str = "kernels/submission.py"
    config: str = "configs/aimo3.toml"
    competition: str = "ai-mathematical-olympiad-progress-prize-3"
    machine_shape: str = "NvidiaH100"
    # Inputs besides the kit's own datasets: a model uploaded as a dataset ('<owner>/<slug>', or a bare
    # '<slug>' for your own; mounted at /kaggle/input/<slug>), or a Kaggle Model
    # ('<owner>/<model>/<framework>/<variation>/<version>', mounted at /kaggle/input/<model>/...).
    dataset_sources: list[str] = field(default_factory=list)
    model_sources: list[str] = field(default_factory=list)
    is_private: bool = True
    # "original" keeps the Docker image of the kernel's first run, so a Kaggle image update cannot break the
    # offline install of a wheelhouse built against the probed image; "latest" follows updates.
    docker_image_pinning_type: str = "original"


@dataclass
class ShipConfig:
    user: str = ""
    license: str = "apache-2.0"  # the kaggle client's spelling (metadata.LICENSES)
    source_slug: str = "aimokit-source"
    source_title: str = "aimokit source code"
    adapters: AdaptersConfig = field(default_factory=AdaptersConfig)
    wheels: WheelsConfig = field(default_factory=WheelsConfig)
    kernels: list[KernelEntry] = field(default_factory=lambda: [KernelEntry()])
    # Refuse any single file larger than this before uploading (a setting, so
    # it can follow Kaggle's current dataset limits).
    max_file_bytes: int = 100 * 1024**3
    push: PushOptions = field(default_factory=PushOptions)

    def __post_init__(self) -> None:
        from .metadata import MetadataError, check_license

        try:
            check_license(self.license)
        except MetadataError as e:
            raise ConfigError(f"ship config: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> "ShipConfig":
        cfg = from_dict(cls, read_toml(path, "ship config"))
        if cfg.user in ("", PLACEHOLDER_USER):
            raise ConfigError(f"{path}: set user = '<your kaggle user name>' (it is {cfg.user!r})")
        return cfg

    def ref(self, slug: str) -> str:
        """`<user>/<slug>`, the id Kaggle knows a dataset or kernel by."""
        return f"{self.user}/{slug}"

    def source_refs(self, entry: KernelEntry) -> list[str]:
        """A kernel's `dataset_sources` as refs: a bare slug is the user's own dataset."""
        return [r if "/" in r else self.ref(r) for r in entry.dataset_sources]

    def dataset_slugs(self) -> dict[str, str]:
        return {"source": self.source_slug, "adapters": self.adapters.slug, "wheels": self.wheels.slug}
