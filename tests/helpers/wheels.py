"""A one-module wheel built locally: what wheelhouse and bundle tests ship instead of a real dependency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def tiny_wheel(tmp_path: Path) -> Path:
    """Build tinypkg-0.1 into tmp_path/wheels; returns that folder (a pip --find-links)."""
    pkg = tmp_path / "tinypkg"
    (pkg / "tinypkg").mkdir(parents=True)
    (pkg / "tinypkg" / "__init__.py").write_text("X = 1\n")
    (pkg / "pyproject.toml").write_text('[project]\nname = "tinypkg"\nversion = "0.1"\n'
                                        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n')
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(pkg)], check=True)
    return wheels
