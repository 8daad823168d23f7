"""The ship config: what `build.py build` bundles and how `build.py push` sends it.

One typed, frozen object loaded the way every job config is (`ShipConfig.load`),
shared by the CLI and the tests. Relative paths in a ship file are relative to
the file itself, so a build does not depend on where it is started from (the
defaults, and paths in a config built in code, are the checkout's). The
adapters are not listed here: each kernel's config names its own
(`engine.lora`), and the adapters dataset ships exactly those (`adapters_to_ship`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..config import ConfigError, Job, KernelConfig, file_relative, setting

PLACEHOLDER_USER = "your-kaggle-user"  # what configs/ship.toml ships with


@dataclass(frozen=True)
class PushOptions:
    """How `build.py push` talks to Kaggle: retries, time limits, visibility."""

    version_note: str = setting("aimokit push", help="The version note of every dataset and kernel version pushed.")
    attempts: int = setting(4, help="Tries per request, the first included.")
    backoff_s: float = setting(2.0, help="Seconds before the first retry; doubled after each failure, with jitter.")
    call_timeout_s: float = setting(300.0, help="The client sets no HTTP timeout; a call hung this long counts as a failure.")
    upload_timeout_s: float = setting(4 * 3600.0, help="One dataset's uploads, at most (a wheelhouse is gigabytes).")
    ready_timeout_s: float = setting(1800.0, help="How long to wait for Kaggle to process a dataset version.")
    poll_s: float = setting(10.0, help="Seconds between readiness and status polls.")
    landed_grace_s: float = setting(120.0, help="Before a timed-out push is sent again, how long to wait for the "
                                               "abandoned request to finish (it may still land: a second kernel "
                                               "push is a second GPU run) and for a new dataset to stop answering "
                                               "404 (a second create says 'title already in use').")
    public: bool = setting(False, help="Create datasets public (kernels follow their own is_private).")

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.poll_s <= 0 or self.call_timeout_s <= 0:
            raise ConfigError("push: need attempts >= 1, poll_s > 0 and call_timeout_s > 0")


@dataclass(frozen=True)
class PreflightConfig:
    """`build.py preflight` (and the first step of every push): what is checked before anything is sent."""

    competition_data: str = setting("", help="A local copy of the competition's data folder (test.csv and its "
                                             "kaggle_evaluation package): given, each kernel file is run under that "
                                             "real package with the embedded default model, as a contract check.")
    gateway_time_s: float = setting(600.0, help="The contract run's time limit (competition.time_limit_s for it).")
    engine_summary: str = setting("", help="kernel_summary.json of a run on the kernel's machine shape (a GPU "
                                           "rehearsal): its engine_start_s is held against serve_limit_s.")
    serve_limit_s: float = setting(900.0, help="How soon serve() must answer the gateway (STARTUP_LIMIT_SECONDS).")
    model_dir: str = setting("", help="A local copy of the attached model: its files and sizes are checked "
                                      "against its index and config.json before a GPU run finds them wrong.")

    def __post_init__(self) -> None:
        if self.gateway_time_s <= 0 or self.serve_limit_s <= 0:
            raise ConfigError("preflight: gateway_time_s and serve_limit_s must be positive")


@dataclass(frozen=True)
class WheelsConfig:
    """The offline wheelhouse: what the Kaggle image lacks, resolved by pip for the image."""

    slug: str = setting("aimokit-wheels", help="The wheelhouse dataset's slug.")
    title: str = setting("aimokit offline wheelhouse", help="The wheelhouse dataset's title.")
    requirements: list[str] = setting(default_factory=list,
                                      help="What the wheelhouse resolves. Empty: what the kernels need, derived "
                                           "(the kit's own dependencies in pyproject.toml, plus each kernel's "
                                           "engine backend's `requirements`, its fallback's too: vLLM's pin "
                                           "lives in engine/vllm.py, where its torch must match the image's).")
    python_version: str = setting("3.12", help="The image's Python (major.minor): wheels are chosen for it.")
    platforms: list[str] = setting(
        default_factory=lambda: ["manylinux2014_x86_64", *[f"manylinux_2_{v}_x86_64" for v in range(17, 40)]],
        help="Wheel platform tags the image accepts: glibc 2.39 on the probed images (image-*.probe.json). pip does "
             "not read manylinux2014 (some wheels, cuda-tile's, carry only that) into manylinux_2_17.")
    find_links: list[str] = setting(default_factory=list, help="Extra folders of wheels for pip (--find-links).")
    no_index: bool = setting(False, help="Resolve from find_links only, not the package index.")
    cache_dir: str = setting("", help="Where downloaded wheels are kept, keyed by name and sha256, so a rebuild "
                                      "copies them instead of downloading again. Empty: $AIMOKIT_WHEEL_CACHE, else "
                                      "$XDG_CACHE_HOME/aimokit/wheels, else ~/.cache/aimokit/wheels.")
    image: str = setting("", help="The target image's packages (`pip list --format=freeze`, as `build.py "
                                  "probe-image` records it): what the image has at a compatible version is not "
                                  "shipped. Empty: no image list, the whole closure ships.")
    replace: list[str] = setting(default_factory=list,
                                 help="Image packages to ship anyway, over the image's version (one fix for a conflict).")
    ignore_pins: list[str] = setting(default_factory=list,
                                     help="Image packages that stand in for a requirement's exact pin (`numba==0.65.0` "
                                          "met by the image's 0.68.0): the other fix, where the pin is stricter than "
                                          "the code needs. Recorded in wheelhouse.json.")


@dataclass(frozen=True)
class AdaptersConfig:
    """The adapters dataset. Which adapters it holds comes from the kernels' configs (engine.lora)."""

    slug: str = setting("aimokit-adapters", help="The adapters dataset's slug.")
    title: str = setting("aimokit LoRA adapters", help="The adapters dataset's title.")
    base_model: str = setting("", help="A local copy of the base model, to check adapter shapes against.")


@dataclass(frozen=True)
class CompileCacheConfig:
    """The compile-cache dataset. Which caches it holds comes from the kernels ([[kernels]] compile_cache)."""

    slug: str = setting("aimokit-compile-cache", help="The compile-cache dataset's slug.")
    title: str = setting("aimokit vLLM compile cache", help="The compile-cache dataset's title.")


@dataclass(frozen=True)
class KernelEntry:
    """One kernel to build and push: its code, its config, its inputs."""

    name: str = setting("submission", help="The kernel's folder under build/kernels and its config's name in the source dataset.")
    slug: str = setting("aimokit-submission", help="The kernel's slug on Kaggle.")
    title: str = setting("aimokit submission", help="The kernel's title on Kaggle.")
    file: str = setting("kernels/submission.py", help="The kernel source the notebook is generated from (the "
                                                      "default: the checkout's own).")
    config: str = setting("configs/aimo3.toml", help="The kernel config it runs; its engine.lora, if local, is "
                                                     "shipped (the default: the checkout's own).")
    competition: str = setting("ai-mathematical-olympiad-progress-prize-3", help="The competition it is attached to.")
    machine_shape: str = setting("NvidiaH100", help="Kaggle's accelerator for it.")
    dataset_sources: list[str] = setting(
        default_factory=list,
        help="Inputs besides the kit's own datasets: a model uploaded as a dataset ('<owner>/<slug>', or a bare "
             "'<slug>' for your own; mounted at /kaggle/input/<slug>).")
    model_sources: list[str] = setting(
        default_factory=list, help="Kaggle Models ('<owner>/<model>/<framework>/<variation>/<version>', mounted at "
                                   "/kaggle/input/<model>/...).")
    compile_cache: str = setting("", help="A compile cache a run of this kernel saved on its machine shape "
                                          "(engine.vllm.compile_cache_save; fetched with `build.py output`): "
                                          "shipped in the compile-cache dataset, and the shipped config's "
                                          "engine.vllm.compile_cache points at it, so the start loads its "
                                          "compiled kernels. Empty: none.")
    is_private: bool = setting(True, help="Keep the kernel private.")
    docker_image: str = setting("", help="The Docker image the kernel runs on, as Kaggle names it "
                                        "(gcr.io/kaggle-gpu-images/python@sha256:...). Empty: the image Kaggle ran "
                                        "the probe on, when `build.py output --probe` recorded one beside the "
                                        "[wheels] image list; else none (docker_image_pinning_type decides).")
    docker_image_pinning_type: str = setting(
        "original", help="'original' keeps the Docker image of the kernel's first run, so a Kaggle image update "
                         "cannot break the offline install of a wheelhouse built against the probed image; "
                         "'latest' follows updates.")


@dataclass(frozen=True)
class ShipConfig(Job):
    """What is bundled into Kaggle datasets and kernels, and how it is pushed."""

    what: ClassVar[str] = "ship config"

    user: str = setting("", help="Your Kaggle user name: datasets and kernels are created under it.")
    license: str = setting("apache-2.0", help="The datasets' license, in the kaggle client's spelling (metadata.LICENSES).")
    source_slug: str = setting("aimokit-source", help="The source dataset's slug.")
    source_title: str = setting("aimokit source code", help="The source dataset's title.")
    adapters: AdaptersConfig = setting(default_factory=AdaptersConfig, help="The adapters dataset.")
    wheels: WheelsConfig = setting(default_factory=WheelsConfig, help="The offline wheelhouse dataset.")
    compile_cache: CompileCacheConfig = setting(default_factory=CompileCacheConfig,
                                                help="The compile-cache dataset (built when a kernel names a cache).")
    kernels: list[KernelEntry] = setting(default_factory=lambda: [KernelEntry()], help="The kernels ([[kernels]] tables).")
    max_file_bytes: int = setting(100 * 1024**3, help="Refuse any single file larger than this before uploading (a "
                                                      "setting, so it can follow Kaggle's current dataset limits).")
    push: PushOptions = setting(default_factory=PushOptions, help="How the push talks to Kaggle.")
    preflight: PreflightConfig = setting(default_factory=PreflightConfig, help="What is checked before a push.")

    def __post_init__(self) -> None:
        from .metadata import MetadataError, check_license

        if self.user in ("", PLACEHOLDER_USER):
            raise ConfigError(f"ship config: set user = '<your kaggle user name>' (it is {self.user!r})")
        try:
            check_license(self.license)
        except MetadataError as e:
            raise ConfigError(f"ship config: {e}") from None
        names = [k.name for k in self.kernels]
        if len(set(names)) != len(names):
            raise ConfigError(f"ship config: kernel names {names} repeat; each kernel needs its own name")

    @classmethod
    def _resolve_paths(cls, data: dict[str, Any], folder: Path) -> dict[str, Any]:
        if "paths" in (data.get("adapters") or {}):
            raise ConfigError("ship config: [adapters] paths is gone: each kernel's config names its adapter "
                              "(engine.lora) and exactly those are shipped; delete the paths line")
        data = dict(data)
        if isinstance(data.get("wheels"), dict):
            w = dict(data["wheels"])
            if "image" in w:
                w["image"] = file_relative(w["image"], folder)
            if isinstance(w.get("find_links"), list):
                w["find_links"] = [file_relative(p, folder) for p in w["find_links"]]
            data["wheels"] = w
        if isinstance(data.get("adapters"), dict) and "base_model" in data["adapters"]:
            data["adapters"] = {**data["adapters"], "base_model": file_relative(data["adapters"]["base_model"], folder)}
        if isinstance(data.get("preflight"), dict):
            data["preflight"] = {k: file_relative(v, folder) if k in ("competition_data", "engine_summary",
                                                                      "model_dir") and v else v
                                 for k, v in data["preflight"].items()}
        kernels = data.get("kernels", [{}])
        if isinstance(kernels, list):
            data["kernels"] = [{**k, **{f: file_relative(k[f], folder) for f in ("file", "config", "compile_cache")
                                        if f in k}}
                               if isinstance(k, dict) else k for k in kernels]
        return data

    def ref(self, slug: str) -> str:
        """`<user>/<slug>`, the id Kaggle knows a dataset or kernel by."""
        return f"{self.user}/{slug}"

    def source_refs(self, entry: KernelEntry) -> list[str]:
        """A kernel's `dataset_sources` as refs: a bare slug is the user's own dataset."""
        return [r if "/" in r else self.ref(r) for r in entry.dataset_sources]

    def dataset_slugs(self) -> dict[str, str]:
        return {"source": self.source_slug, "adapters": self.adapters.slug, "wheels": self.wheels.slug,
                "compile-cache": self.compile_cache.slug}

    def kernel_config(self, entry: KernelEntry, root: Path) -> KernelConfig:
        """A kernel's config, loaded and checked (a path still relative is the checkout's, under root)."""
        return KernelConfig.load(root / entry.config)

    def wheel_requirements(self, root: Path) -> list[str]:
        """What the wheelhouse resolves: `wheels.requirements` when set, else what the kernels need. That is
        the kit's own dependencies (root/pyproject.toml) plus the requirements each kernel's engine backend,
        and its fallback, declares (`requirements` on the backend class): no backend's pin is written here."""
        if self.wheels.requirements:
            return list(self.wheels.requirements)
        import tomllib

        from .. import registry

        pyproject = root / "pyproject.toml"
        if not pyproject.is_file():
            raise ConfigError(f"wheels.requirements is empty, so it is derived from {pyproject}, which is missing: "
                              "build from the kit's checkout, or list the requirements in [wheels]")
        out = list(tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", []))
        for k in self.kernels:
            engine = self.kernel_config(k, root).engine
            for name in filter(None, (engine.backend, engine.fallback)):
                out += [r for r in registry.BACKENDS.get(name, "engine.backend").requirements if r not in out]
        return out

    def adapters_to_ship(self, root: Path) -> dict[str, Path]:
        """The local adapters the kernels name (engine.lora), by the folder name they ship under.

        Two different adapters with one folder name would collide in the dataset: refused, naming both.
        """
        out: dict[str, Path] = {}
        for k in self.kernels:
            lora = self.kernel_config(k, root).engine.lora
            if not lora or lora.startswith("$"):
                continue
            path = Path(lora).resolve()
            name = path.name
            if name in out and out[name] != path:
                raise ConfigError(f"adapters {str(out[name])!r} and {str(path)!r} would both ship as {name!r}; "
                                  "rename one folder (or save each under its own name, e.g. runs/dpo-r16/adapter -> "
                                  "runs/dpo-r16/dpo-r16)")
            out[name] = path
        return out
