"""Copy files into a dataset folder, never a credential.

Secrets are refused by name and by content, on every path, so a kaggle.json
dropped anywhere in the tree, a `.env`, a token file or `.git` never ships.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path
from typing import Iterable

SECRET_NAMES = (
    "kaggle.json", ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "*token*", "*secret*",
    "credentials*", ".netrc", ".pypirc", ".git-credentials",
)
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints", "runs", "build"}
_SECRET_TEXT = re.compile(rb'"key"\s*:\s*"[0-9a-f]{32}"|KAGGLE_KEY\s*=|hf_[A-Za-z0-9]{30,}')


def is_secret(path: Path) -> bool:
    name = path.name.lower()
    if any(fnmatch.fnmatch(name, pat) for pat in SECRET_NAMES):
        return True
    try:
        if path.is_file() and path.stat().st_size < 1 << 20:
            return bool(_SECRET_TEXT.search(path.read_bytes()))
    except OSError:
        return True
    return False


def iter_files(root: Path) -> Iterable[Path]:
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts):
            continue
        if p.is_file() and not p.is_symlink():
            yield p


def copy_tree(src: Path, dst: Path, skipped: list[str] | None = None) -> list[Path]:
    """Copy src into dst, leaving secrets and caches out; returns what was copied."""
    copied = []
    for p in iter_files(src):
        if is_secret(p):
            if skipped is not None:
                skipped.append(str(p))
            continue
        target = dst / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
        copied.append(target)
    return copied
