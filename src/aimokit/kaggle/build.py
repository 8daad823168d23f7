"""`build.py build`: a checkout plus adapters become Kaggle dataset and kernel folders.

Each shipped dataset has a folder in the checkout, datasets/<name>/, with the
README Kaggle shows and, for the source, what goes in (dataset.toml). The
build reads those and configs/ship.toml and writes build/: one folder per
dataset with its dataset-metadata.json, one per kernel with
kernel-metadata.json and the generated notebook. The wheelhouse is resolved
by pip for the image (wheelhouse.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import vocab
from . import image_facts
from ..adapters import validate_adapter
from ..config import KernelConfig, read_toml, to_toml
from ..errors import AimokitError
from ..io import fresh_dir
from .config import KernelEntry, ShipConfig
from .bundle import copy_tree, is_secret, secret_shape
from .metadata import DatasetSpec, KernelSpec
from .inputs import InputError, by_source, check_inputs, mounts, required_paths
from .wheel_cache import FIXED_MTIME
from .wheelhouse import WheelhouseError, build_wheelhouse, read_image_list
from .notebook import ADAPTERS_MARKER, COMPILE_CACHE_MARKER, SOURCE_MARKER, WHEELS_MARKER, make_notebook, write_notebook

log = logging.getLogger(__name__)


class BuildError(AimokitError, ValueError):
    """The build cannot produce what Kaggle would accept."""


@dataclass(frozen=True)
class DatasetFolder:
    """datasets/<name>/ in the checkout: what goes into one shipped dataset, and the README Kaggle shows.

    `dataset.toml` holds `include` (paths relative to the checkout) where the content is the checkout's
    own; the user's choices (adapters, requirements, slugs) stay in configs/ship.toml.
    """
    name: str
    readme: str
    include: tuple[str, ...] = ()


def read_dataset_folder(root: Path, name: str) -> DatasetFolder:
    d = root / "datasets" / name
    readme = d / "README.md"
    if not readme.is_file():
        raise BuildError(f"{readme} is missing: each shipped dataset's folder holds the README Kaggle shows")
    include: tuple[str, ...] = ()
    if (d / "dataset.toml").is_file():
        spec = read_toml(d / "dataset.toml", f"dataset spec {name}")
        unknown = set(spec) - {"include"}
        if unknown:
            raise BuildError(f"{d / 'dataset.toml'}: unknown keys {sorted(unknown)}; it takes only 'include'")
        include = tuple(spec.get("include", []))
        missing = [p for p in include if not (root / p).exists()]
        if missing:
            raise BuildError(f"{d / 'dataset.toml'}: include names {missing}, which the checkout does not have")
    return DatasetFolder(name, readme.read_text(), include)


def _dataset_dir(root: Path, out: Path, name: str, ref: str, title: str, license: str) -> tuple[Path, DatasetFolder]:
    folder = read_dataset_folder(root, name)
    spec = DatasetSpec(ref, title, license, description=folder.readme)
    d = fresh_dir(out / "datasets" / name)
    (d / "dataset-metadata.json").write_text(json.dumps(spec.metadata(), indent=2) + "\n")
    return d, folder


def build_source(root: Path, cfg: ShipConfig, out: Path) -> Path:
    d, folder = _dataset_dir(root, out, "source", cfg.ref(cfg.source_slug), cfg.source_title, cfg.license)
    skipped: list[str] = []
    for rel in folder.include:
        src = root / rel
        if src.is_dir():
            copy_tree(src, d / rel, skipped)
        elif not is_secret(src):
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, d / rel)
        else:
            skipped.append(str(src))
    for path in skipped:  # never silently: a file left out is named, with what it looked like
        log.warning("source dataset: %s left out: it holds %s", path, secret_shape(Path(path)))
    (d / SOURCE_MARKER).write_text("aimokit source dataset\n")
    shipped = cfg.adapters_to_ship(root)
    for k in cfg.kernels:  # each kernel's KernelConfig, validated, under a name the notebook finds
        kernel = cfg.kernel_config(k, root)
        kernel = replace(kernel, engine=replace(kernel.engine, lora=shipped_lora_path(kernel.engine.lora, shipped)))
        kernel = replace(kernel, solver=replace(kernel.solver, selector=ship_selector(kernel.solver.selector, d, k.name)))
        kernel = shipped_compile_cache(kernel, k)
        (d / f"{k.name}.toml").write_text(to_toml(kernel))
    return d


def ship_selector(path: str, source: Path, kernel: str) -> str:
    """A kernel's local selector file (solver.selector), checked and copied into the source dataset, and the
    path the notebook finds it at ($AIMOKIT_SOURCE: the source dataset, wherever Kaggle mounts it)."""
    if not path or path.startswith("$"):
        return path
    from .. import selector

    try:
        selector.load(path)
    except selector.SelectorError as e:
        raise BuildError(f"kernel {kernel}: {e}") from None
    (source / "selectors").mkdir(exist_ok=True)
    shutil.copy2(path, source / "selectors" / f"{kernel}.json")
    return f"$AIMOKIT_SOURCE/selectors/{kernel}.json"


def shipped_lora_path(lora: str, shipped: dict[str, Path]) -> str:
    """A kernel config's local adapter path, rewritten to where Kaggle will mount it.

    On Kaggle the notebook sets $AIMOKIT_ADAPTERS to the adapters dataset's
    folder, wherever it is mounted; the adapter ships under its folder name.
    """
    if not lora or lora.startswith("$"):
        return lora
    path = Path(lora).resolve()
    return f"$AIMOKIT_ADAPTERS/{next(name for name, p in shipped.items() if p == path)}"


def shipped_compile_cache(kernel: KernelConfig, k: KernelEntry) -> KernelConfig:
    """A kernel config pointed at the compile cache its ship entry names, where the notebook finds the
    compile-cache dataset ($AIMOKIT_COMPILE_CACHE/<kernel>). A cache the kernel config names by a local path
    would not exist on Kaggle: refused, naming the ship config's setting."""
    own = kernel.engine.section("vllm")
    if own.compile_cache and not own.compile_cache.startswith(("$", "kaggle:")):
        raise BuildError(f"kernel {k.name}: engine.vllm.compile_cache = {own.compile_cache!r} is a local folder, "
                         "which Kaggle does not have: name it in the ship config's [[kernels]] compile_cache (it "
                         "ships as a dataset) and leave the kernel config's empty")
    if not k.compile_cache:
        return kernel
    if kernel.engine.backend != "vllm":
        raise BuildError(f"kernel {k.name}: compile_cache is vLLM's, and its engine.backend is "
                         f"{kernel.engine.backend!r}")
    return kernel.override({"engine.vllm.compile_cache": f"$AIMOKIT_COMPILE_CACHE/{k.name}"})


def build_compile_cache(root: Path, cfg: ShipConfig, out: Path) -> Path | None:
    """The compile caches the kernels name, each checked whole (its manifest) and shipped under the kernel's
    name, with a manifest of what each was made on."""
    from ..engine.compile_cache import MANIFEST, CompileCacheError, copy_cache, read_manifest

    named = [k for k in cfg.kernels if k.compile_cache]
    if not named:
        return None
    c = cfg.compile_cache
    d, _ = _dataset_dir(root, out, "compile-cache", cfg.ref(c.slug), c.title, cfg.license)
    manifest = {}
    for k in named:
        try:
            made = read_manifest(Path(k.compile_cache))
        except CompileCacheError as e:
            raise BuildError(f"kernel {k.name}: compile_cache: {e}") from None
        if made["identity"]["device"].startswith("cpu"):
            log.warning("kernel %s: its compile cache %s was made on a CPU; the kernel runs on %s, where it is "
                        "set aside", k.name, k.compile_cache, k.machine_shape)
        copy_cache(Path(k.compile_cache), d / k.name)
        shutil.copyfile(Path(k.compile_cache) / MANIFEST, d / k.name / MANIFEST)
        manifest[k.name] = made
    (d / COMPILE_CACHE_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
    return d


def build_adapters(root: Path, cfg: ShipConfig, out: Path) -> Path | None:
    """The adapters the kernels name (engine.lora), each checked against the base model, with a manifest."""
    shipped = cfg.adapters_to_ship(root)
    if not shipped:
        return None
    d, _ = _dataset_dir(root, out, "adapters", cfg.ref(cfg.adapters.slug), cfg.adapters.title, cfg.license)
    manifest = []
    for name, path in shipped.items():
        meta = validate_adapter(path, cfg.adapters.base_model or None)
        copy_tree(path, d / name)
        manifest.append({"name": name, "rank": meta.get("r"), "target_modules": meta.get("target_modules"),
                         "base_model": meta.get("base_model_name_or_path")})
    (d / ADAPTERS_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
    return d


def check_image_facts(root: Path, cfg: ShipConfig) -> dict | None:
    """The wheelhouse is resolved for the image the probe measured, not an assumed one: a Python or platform
    that differs from the probe's is an error; an image list no Kaggle probe recorded is said aloud.
    Returns the probe's facts (None when the image was not probed)."""
    w = cfg.wheels
    if not w.image:
        return None
    try:
        facts_path, facts = image_facts.probe_facts(root, w.image)
    except ValueError as e:
        raise BuildError(f"wheels: {e}") from None
    if facts is None:
        log.warning("wheels: %s has no %s beside it: the image was not measured (run `build.py probe-image`)",
                    w.image, facts_path.name)
        return None
    for check in (image_facts.check_python(w.python_version, facts), image_facts.check_platform(w.platforms, facts)):
        if check[0] == "fail":
            raise BuildError(f"wheels: {check[1]} ({facts_path.name})")
    if not facts.get("kaggle"):
        log.warning("wheels: the image list %s was recorded off Kaggle (%s), not by a Kaggle probe: the kernel's "
                    "image may differ; run `build.py probe-image` on the kernel's machine shape and name its list",
                    w.image, facts.get("nvidia_smi") or facts.get("executable", "an unknown machine"))
    return facts


def build_wheels(root: Path, cfg: ShipConfig, out: Path) -> Path:
    """The requirements' full closure for the image, less what the image has (see wheelhouse)."""
    w = replace(cfg.wheels, requirements=cfg.wheel_requirements(root))
    d, _ = _dataset_dir(root, out, "wheels", cfg.ref(w.slug), w.title, cfg.license)
    facts = check_image_facts(root, cfg)
    try:
        image = read_image_list(root / w.image) if w.image else {}
        image_path = (root / w.image).resolve()
        shown = str(image_path.relative_to(root.resolve())) if image_path.is_relative_to(root.resolve()) else image_path.name
        manifest = build_wheelhouse(w, image, d, shown if w.image else "")  # no local path of the builder's in it
    except WheelhouseError as e:
        raise BuildError(f"wheels dataset: {e}") from None
    status, why = image_facts.check_cuda(manifest["shipped"], facts)
    if status == "fail":
        raise BuildError(f"wheels dataset: {why}")
    if status == "warn":
        log.warning("wheels: %s", why)
    if any(cfg.kernel_config(k, root).solver.protocol == "harmony" for k in cfg.kernels):
        try:  # gpt-oss's vocabulary, for openai-harmony offline (the notebook checks its hash and points at it)
            vocab.ship(d)
        except vocab.VocabError as e:
            raise BuildError(f"wheels dataset: {e}") from None
    (d / WHEELS_MARKER).write_text("\n".join(w.requirements) + "\n")
    return d


def kernel_image(root: Path, cfg: ShipConfig, k: KernelEntry) -> str:
    """The Docker image a kernel is pinned to: its own `docker_image`, else the one Kaggle ran the probe on,
    so the kernel runs on the image the wheelhouse was resolved against, however much later it is created."""
    if k.docker_image:
        return k.docker_image
    if not cfg.wheels.image:
        return ""
    try:
        image = image_facts.probed_docker_image(image_facts.probe_facts(root, cfg.wheels.image)[1])
    except ValueError:
        return ""  # check_image_facts has said why
    if image:
        log.info("kernel %s: pinned to the probed image %s", k.name, image)
    return image


def build_kernels(root: Path, cfg: ShipConfig, out: Path, datasets: list[str]) -> list[Path]:
    dirs = []
    for k in cfg.kernels:
        d = fresh_dir(out / "kernels" / k.name)
        code_file = f"{k.name}.ipynb"
        own = cfg.source_refs(k)
        sources = datasets + [r for r in own if r not in datasets]
        spec = KernelSpec(
            id=cfg.ref(k.slug), title=k.title, code_file=code_file, is_private=k.is_private,
            dataset_sources=sources, competition_sources=[k.competition] if k.competition else [],
            model_sources=k.model_sources, machine_shape=k.machine_shape,
            docker_image_pinning_type=k.docker_image_pinning_type, docker_image=kernel_image(root, cfg, k),
        )
        meta = spec.metadata()
        shipped_path = out / "datasets" / "source" / f"{k.name}.toml"
        shipped = KernelConfig.load(shipped_path)  # as the kernel will read it
        attached = mounts(sources, k.competition, k.model_sources)
        try:
            check_inputs(shipped, attached, f"kernel {k.name} ({k.config})")
        except InputError as e:
            raise BuildError(str(e)) from None
        # each input named by its source, so the kernel finds it under whichever layout Kaggle mounts
        shipped = by_source(shipped, attached)
        shipped_path.write_text(to_toml(shipped))
        nb = make_notebook(root / k.file, k.title, config_name=f"{k.name}.toml", required=required_paths(shipped),
                           needs_vocab=shipped.solver.protocol == "harmony",
                           needs_vllm=shipped.engine.backend == "vllm" and not shipped.engine.fallback)
        write_notebook(nb, d / code_file)
        (d / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        dirs.append(d)
    return dirs


def check_sizes(folder: Path, limit: int) -> None:
    for p in folder.rglob("*"):
        if p.is_file() and p.stat().st_size > limit:
            raise BuildError(
                f"{p} is {p.stat().st_size} bytes, over the {limit}-byte file limit (max_file_bytes); "
                "split it or leave it out of the dataset"
            )


def stamp(folder: Path) -> None:
    """Every file and folder of a built dataset at one fixed mtime: the client's upload-resume record compares
    mtimes, so a rebuild of the same content must look the same to it, or a rerun re-sends gigabytes."""
    for p in [*folder.rglob("*"), folder]:
        os.utime(p, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)


def content_hash(folder: Path) -> str:
    """A digest of a dataset's files (metadata excluded): unchanged content is not pushed again."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "dataset-metadata.json":
            h.update(str(p.relative_to(folder)).encode())
            with open(p, "rb") as f:  # streamed: wheels run to hundreds of MB
                h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def build_all(root: Path, cfg: ShipConfig, out: Path, wheels: bool = True) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    built: dict[str, Any] = {"datasets": {}, "kernels": []}
    source = build_source(root, cfg, out)
    built["datasets"]["source"] = source
    adapters = build_adapters(root, cfg, out)
    if adapters:
        built["datasets"]["adapters"] = adapters
    if wheels:
        built["datasets"]["wheels"] = build_wheels(root, cfg, out)
    caches = build_compile_cache(root, cfg, out)
    if caches:
        built["datasets"]["compile-cache"] = caches
    slugs = cfg.dataset_slugs()
    refs = [cfg.ref(slugs[name]) for name in built["datasets"]]
    for d in built["datasets"].values():
        check_sizes(d, cfg.max_file_bytes)
    built["kernels"] = build_kernels(root, cfg, out, refs)  # last writer of the source's kernel configs
    for d in [*built["datasets"].values(), *built["kernels"]]:
        stamp(d)
    return built


def describe(built: dict[str, Any]) -> str:
    lines = []
    for name, d in built["datasets"].items():
        files = [p for p in d.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        lines.append(f"dataset {name}: {d} ({len(files)} files, {size / 1024**2:.1f} MiB)")
    for d in built["kernels"]:
        lines.append(f"kernel: {d} ({', '.join(sorted(p.name for p in d.iterdir()))})")
    return "\n".join(lines)
