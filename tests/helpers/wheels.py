"""A one-module wheel built locally: what wheelhouse and bundle tests ship instead of a real dependency."""

from __future__ import annotations

import base64
import hashlib
import zipfile

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


def zip_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A real, installable wheel: one module, and its dependencies as Requires-Dist."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def digest(c):
        return base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()

    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, c in files.items():  # fixed timestamps: the same wheel, byte for byte, whenever it is made
            z.writestr(zipfile.ZipInfo(p, (1980, 1, 1, 0, 0, 0)), c)
        z.writestr(zipfile.ZipInfo(f"{info}/RECORD", (1980, 1, 1, 0, 0, 0)), "".join(f"{p},sha256={digest(c)},{len(c)}\n" for p, c in files.items())
                   + f"{info}/RECORD,,\n")
    return path
