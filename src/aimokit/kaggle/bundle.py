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
# Token shapes, wherever they appear and in any syntax (JSON, YAML, env, shell, Python): the client 2.x access
# token (KGAT_...), the legacy key (32 hex characters, either case) and the credentials' variable names,
# private keys, Hugging Face tokens.
SECRET_SHAPES = {
    "Kaggle access token": rb"KGAT_[A-Za-z0-9_\-]{16,}",
    "Kaggle credential variable": rb"(?i:\bKAGGLE_(?:KEY|USERNAME|API_TOKEN)\b)[\"']?\s*[:=]",
    "Kaggle API key (32 hex characters)": rb"(?<![0-9A-Za-z])[0-9a-fA-F]{32}(?![0-9A-Za-z])",
    "private key": rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----",
    "Hugging Face token": rb"\bhf_[A-Za-z0-9]{30,}",
}
_SECRET_TEXT = re.compile(b"|".join(b"(?:" + p + b")" for p in SECRET_SHAPES.values()))
_CHUNK = 1 << 20
_OVERLAP = 256  # a token that straddles two chunks is still seen


def secret_shape(path: Path) -> str | None:
    """The kind of secret a file holds by its name or anywhere in its content (read in chunks, any size)."""
    name = path.name.lower()
    if any(fnmatch.fnmatch(name, pat) for pat in SECRET_NAMES):
        return f"a credential's file name ({path.name})"
    try:
        with open(path, "rb") as f:
            tail = b""
            while chunk := f.read(_CHUNK):
                m = _SECRET_TEXT.search(tail + chunk)
                if m:
                    return next(kind for kind, p in SECRET_SHAPES.items() if re.fullmatch(p, m.group()))
                tail = chunk[-_OVERLAP:]
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return None


def is_secret(path: Path) -> bool:
    return secret_shape(path) is not None


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
