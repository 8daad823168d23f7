"""Wheels kept between builds, keyed by name and sha256: a rebuild copies, it does not download.

Why: a wheelhouse is ~1 GB (vLLM's closure). Downloaded afresh on every build, each wheel got a new
mtime, and the kaggle client's resumable-upload record compares the file's mtime, so an interrupted
upload of it never resumed across a rerun. Here a wheel is looked up by the sha256 pip's resolver
reported for it (`download_info.archive_info`), verified when it is used, and copied into the
dataset with a fixed mtime (`FIXED_MTIME`): the same inputs give the same files, byte for byte and
stamp for stamp, on every build.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import AimokitError
from .config import WheelsConfig

log = logging.getLogger(__name__)

FIXED_MTIME = 315532800  # 1980-01-01 00:00 UTC, zip's epoch: every built file carries it


class WheelCacheError(AimokitError, ValueError):
    """A wheel could not be had as the resolver reported it; the message names the fix."""


def canonical(name: str) -> str:
    """A package name as pip compares it (PEP 503): the wheelhouse and the cache key by it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cache_root(cfg: WheelsConfig) -> Path:
    """`wheels.cache_dir`, else $AIMOKIT_WHEEL_CACHE, else the XDG cache folder."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    if os.environ.get("AIMOKIT_WHEEL_CACHE"):
        return Path(os.environ["AIMOKIT_WHEEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aimokit" / "wheels"


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cached(cache: Path, name: str, filename: str, sha256: str) -> Path | None:
    """The cached wheel for (name, sha256, file name), verified; a damaged entry is removed and said aloud."""
    if not sha256 or not filename:
        return None
    path = cache / name / sha256 / filename
    if not path.is_file():
        return None
    if sha256_of(path) != sha256:
        log.warning("wheel cache: %s does not match its sha256 %s; removed, it is downloaded again", path, sha256)
        path.unlink()
        return None
    return path


def put(cache: Path, name: str, wheel: Path) -> Path:
    """Move a downloaded wheel into the cache under its sha256; returns where it now is."""
    digest = sha256_of(wheel)
    target = cache / name / digest / wheel.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    shutil.move(str(wheel), tmp)  # another file system: a copy, then a rename in place
    os.replace(tmp, target)
    return target


def place(src: Path, dest: Path) -> None:
    """A copy of the cached wheel at `dest`, stamped with the fixed mtime.

    A copy, not a hard link: a link would let a change to a built file reach into the cache (and a cache
    repair into every earlier build)."""
    dest.unlink(missing_ok=True)
    shutil.copyfile(src, dest)
    os.utime(dest, (FIXED_MTIME, FIXED_MTIME))


def fetch(pins: list, dest: Path, cfg: WheelsConfig,
          download: Callable[[list, Path, WheelsConfig], list[Path]]) -> tuple[list[Path], dict[str, int]]:
    """One wheel per pin in `dest`: from the cache when it holds it, else downloaded (`download`) into it.

    A downloaded wheel whose sha256 differs from the one the resolver reported is refused: the index
    changed between resolve and download, and the report would no longer say what ships.
    """
    cache = cache_root(cfg)
    dest.mkdir(parents=True, exist_ok=True)
    found = {p.name: cached(cache, p.name, p.filename, p.sha256) for p in pins}
    need = [p for p in pins if found[p.name] is None]
    if need:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".incoming-", dir=cache) as tmp:
            by_name = {p.name: p for p in need}
            for wheel in download(need, Path(tmp), cfg):
                pin = by_name.get(canonical(wheel.name.split("-")[0]))
                if pin is None:
                    continue
                if pin.sha256 and sha256_of(wheel) != pin.sha256:
                    raise WheelCacheError(f"{wheel.name} downloaded with sha256 {sha256_of(wheel)}, but the resolver "
                                          f"reported {pin.sha256}: the index changed during the build; run it again")
                found[pin.name] = put(cache, pin.name, wheel)
    missing = sorted(n for n, path in found.items() if path is None)
    if missing:
        raise WheelCacheError(f"no wheel was downloaded for {missing}")
    wheels = []
    for p in pins:
        src = found[p.name]
        place(src, dest / src.name)
        wheels.append(dest / src.name)
    stats = {"from_cache": len(pins) - len(need), "downloaded": len(need)}
    log.info("wheels: %d from the cache (%s), %d downloaded", stats["from_cache"], cache, stats["downloaded"])
    return sorted(wheels), stats
