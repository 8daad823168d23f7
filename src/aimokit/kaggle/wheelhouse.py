"""A complete offline wheelhouse for the target image, resolved by pip itself.

`pip download --no-deps vllm` ships one wheel and none of its ~60
dependencies, so `import vllm` fails on Kaggle. Here pip's own resolver
computes the closure, for the image's Python and platform, and the image's
packages take part as what they are: already installed. Each package of the
image list becomes a dependency-free stub wheel at `<version>+image`, pinned
by a constraint, so the resolver
- never walks into what the image already has (torch's CUDA libraries, say);
- leaves out every package the image has at a compatible version;
- stops on a real conflict (vLLM pins torch==2.11.0, the image has 2.9.0) with
  a message that names both sides and the two fixes: ship the package over the
  image (`wheels.replace`), or choose requirements the image satisfies.
What remains is downloaded (one wheel per package) and verified: the same
requirements must resolve with `--no-index` from the wheelhouse plus the image,
and where this machine's Python is the target's, install into an empty folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from ..errors import AimokitError
from . import wheel_cache
from .wheel_cache import canonical
from .config import WheelsConfig

IMAGE_TAG = "image"  # the local version label the stubs carry


class WheelhouseError(AimokitError, ValueError):
    """The wheelhouse cannot be made complete for the image; the message names the fix."""


def read_image_list(path: str | Path) -> dict[str, str]:
    """`name==version` lines (`pip list --format=freeze` or `pip freeze`) as {canonical name: version}."""
    p = Path(path)
    if not p.is_file():
        raise WheelhouseError(f"image package list {p} does not exist; record one with `build.py probe-image` "
                              f"and `build.py output`, or point wheels.image at an existing list")
    out: dict[str, str] = {}
    for line in p.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;]+)", line)
        if m:
            out[canonical(m.group(1))] = m.group(2)
    if not out:
        raise WheelhouseError(f"{p} lists no `name==version` lines; record it with `pip list --format=freeze`")
    return out


def _stub(name: str, version: str, folder: Path) -> None:
    """A wheel with nothing in it but its name and version: 'installed already'."""
    dist = canonical(name).replace("-", "_")
    v = f"{version.split('+')[0]}+{IMAGE_TAG}"
    info = f"{dist}-{v}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {v}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: aimokit\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def digest(c: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()

    record = "".join(f"{p},sha256={digest(c)},{len(c)}\n" for p, c in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{dist}-{v}-py3-none-any.whl", "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
        z.writestr(f"{info}/RECORD", record)


def image_stubs(image: dict[str, str], replace: list[str], folder: Path,
                stand_in: dict[str, str] | None = None) -> Path:
    """Stub wheels for the image's packages (those not replaced) and the constraints that pin them.

    `stand_in` gives the version a stub claims instead of the image's (see `wheels.ignore_pins`).
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    keep = {canonical(r) for r in replace}
    lines = []
    for name, version in sorted(image.items()):
        version = (stand_in or {}).get(name, version)
        if name in keep or not re.match(r"^\d", version):
            continue
        _stub(name, version, folder)
        lines.append(f"{name}=={version.split('+')[0]}+{IMAGE_TAG}\n")
    constraints = folder / "image-constraints.txt"
    constraints.write_text("".join(lines))
    return constraints


@dataclass(frozen=True)
class Pin:
    """One wheel to ship, as pip's resolver reported it: its sha256 keys the wheel cache (wheel_cache)."""

    name: str
    version: str
    url: str = ""
    sha256: str = ""

    @property
    def filename(self) -> str:
        return unquote(self.url.rsplit("/", 1)[-1]) if self.url else ""


def _target_args(cfg: WheelsConfig) -> list[str]:
    args = ["--python-version", cfg.python_version, "--implementation", "cp", "--only-binary=:all:"]
    for plat in cfg.platforms:
        args += ["--platform", plat]
    return args + ["--platform", "any"]


def _index_args(cfg: WheelsConfig) -> list[str]:
    args = []
    for fl in cfg.find_links:
        args += ["--find-links", fl]
    return args + (["--no-index"] if cfg.no_index else [])


# pip's `--python-version` picks wheel tags and checks Requires-Python for the target, but evaluates
# environment markers against the interpreter running it: on a 3.11 host, vLLM's
# `setuptools<81; python_version > "3.11"` was silently dropped for a 3.12 image. This launcher runs pip's
# own resolver with the marker environment of the target (a Linux x86_64 CPython) instead.
_TARGET_PIP = """
import sys
from pip._vendor.packaging import markers
env = dict(markers.default_environment())
full = sys.argv[1] if sys.argv[1].count(".") == 2 else sys.argv[1] + ".0"
env.update(python_version=".".join(full.split(".")[:2]), python_full_version=full, os_name="posix",
           sys_platform="linux", platform_system="Linux", platform_machine="x86_64",
           implementation_name="cpython", platform_python_implementation="CPython")
markers.default_environment = lambda: dict(env)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _pip(args: list[str], python_version: str | None = None) -> subprocess.CompletedProcess:
    """pip, with environment markers evaluated for `python_version` on Linux x86_64 when it is given."""
    if python_version is None:
        return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    return subprocess.run([sys.executable, "-c", _TARGET_PIP, python_version, *args], capture_output=True, text=True)


def explain_conflict(stderr: str, requirements: list[str]) -> str:
    """pip's ResolutionImpossible, said as the fix."""
    image_pins = re.findall(r"\(constraint\) ([A-Za-z0-9._-]+)==([^\s+]+)\+" + IMAGE_TAG, stderr)
    needs = re.findall(r"^\s+(\S+ \S+) depends on (.+)$", stderr, re.M)
    if image_pins:
        parts = []
        for name, version in dict(image_pins).items():
            wants = [f"{who} needs {spec}" for who, spec in needs
                     if canonical(re.match(r"[A-Za-z0-9._-]+", spec).group(0)) == canonical(name)]
            parts.append(f"the image has {name} {version}, but "
                         f"{'; '.join(wants) or 'the requirements need another version'}")
        names = sorted({canonical(n) for n, _ in image_pins})
        return (f"{'; '.join(parts)}. Fix: ship it over the image (wheels.replace = {names!r}, and check that "
                f"what else the image built against it still works), or choose requirements the image satisfies "
                f"(a version of {', '.join(requirements)} that accepts the image's {', '.join(names)})")
    tail = "\n".join(l for l in stderr.splitlines() if l.strip() and not l.startswith("WARNING: Location"))
    return f"pip could not resolve {requirements} for the target:\n{tail[-1500:]}"


def resolve(requirements: list[str], image: dict[str, str], cfg: WheelsConfig, work: Path,
            stand_in: dict[str, str] | None = None) -> list[Pin]:
    """The packages to ship: pip's closure of `requirements` for the target, minus what the image has.

    A conflict on a package of `cfg.ignore_pins` with an exact pin is settled by letting the image's
    package stand in for the pinned version (recorded in `stand_in`); any other conflict is an error.
    """
    stand_in = {} if stand_in is None else stand_in
    ignorable = {canonical(n) for n in cfg.ignore_pins}
    for _ in range(len(ignorable) + 1):
        stubs = work / "image-stubs"
        constraints = image_stubs(image, cfg.replace, stubs, stand_in)
        report = work / "resolve-report.json"
        proc = _pip(["install", "--dry-run", "--ignore-installed", "--report", str(report),  # not --quiet: it hides the conflict
                     "--target", str(work / "unused-target"), *_target_args(cfg), "--find-links", str(stubs),
                     "-c", str(constraints), *_index_args(cfg), *requirements], cfg.python_version)
        if proc.returncode == 0:
            return pins_from_report(json.loads(report.read_text()))
        log = proc.stdout + proc.stderr  # pip splits the explanation between them
        pinned = _exact_pins_on_image(log, ignorable - set(stand_in))
        if not pinned:
            raise WheelhouseError(explain_conflict(log, requirements))
        stand_in.update(pinned)
    raise WheelhouseError(explain_conflict(log, requirements))


def _exact_pins_on_image(log: str, names: set[str]) -> dict[str, str]:
    """{package: pinned version} for conflicts where a requirement pins (==) one of `names` that the image has."""
    image_pins = {canonical(n) for n, _ in re.findall(r"\(constraint\) ([A-Za-z0-9._-]+)==([^\s+]+)\+" + IMAGE_TAG, log)}
    out = {}
    for _, spec in re.findall(r"^\s+(\S+ \S+) depends on (.+)$", log, re.M):
        m = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([\w.]+)", spec.strip())
        if m and canonical(m.group(1)) in names & image_pins:
            out[canonical(m.group(1))] = m.group(2)
    return out


def trim_report(report: dict, work: Path | None = None) -> dict:
    """pip's resolver report, cut to what says why each wheel ships: name, version, requirements, source.

    Byte for byte the same for the same inputs: the image's stub wheels live in a temporary folder, whose
    path is replaced by a fixed name, and entries are sorted, so a rebuild hashes the same and pushes nothing."""
    keep = ("name", "version", "requires_dist", "requires_python")

    def url(item: dict) -> str:
        u = item.get("download_info", {}).get("url", "")
        if work is not None and u.startswith(Path(work).resolve().as_uri()):
            return "image-stub:" + unquote(u.rsplit("/", 1)[-1])  # the image's own package, not a download
        return u

    install = [{"metadata": {k: item["metadata"][k] for k in keep if k in item["metadata"]},
                "requested": item.get("requested", False), "download_info": {"url": url(item)}}
               for item in report["install"]]
    return {"pip_version": report.get("pip_version"),
            "install": sorted(install, key=lambda i: (canonical(i["metadata"]["name"]), i["metadata"]["version"]))}


def pins_from_report(report: dict) -> list[Pin]:
    """The report's installs, less the image's stubs."""
    pins = []
    for item in report["install"]:
        meta = item["metadata"]
        if meta["version"].endswith("+" + IMAGE_TAG):
            continue
        info = item.get("download_info", {})
        archive = info.get("archive_info", {})
        digest = archive.get("hashes", {}).get("sha256") or archive.get("hash", "").removeprefix("sha256=")
        pins.append(Pin(canonical(meta["name"]), meta["version"], info.get("url", ""),
                        digest if re.fullmatch(r"[0-9a-f]{64}", digest or "") else ""))
    return sorted(pins, key=lambda p: p.name)


def download(pins: list[Pin], dest: Path, cfg: WheelsConfig) -> list[Path]:
    """One wheel for each pin, for the target's Python and platform."""
    dest.mkdir(parents=True, exist_ok=True)
    if not pins:
        return []
    proc = _pip(["download", "--no-deps", "--quiet", "--dest", str(dest), *_target_args(cfg), *_index_args(cfg),
                 *[f"{p.name}=={p.version}" for p in pins]])
    if proc.returncode != 0:
        raise WheelhouseError(f"pip download failed:\n{proc.stderr[-2000:]}")
    wheels = sorted(dest.glob("*.whl"))
    got = {canonical(w.name.split("-")[0]) for w in wheels}
    missing = sorted({p.name for p in pins} - got)
    if missing:
        raise WheelhouseError(f"no wheel was downloaded for {missing}")
    return wheels


def verify(requirements: list[str], wheels: Path, image: dict[str, str], cfg: WheelsConfig, work: Path,
           stand_in: dict[str, str] | None = None) -> str:
    """The wheelhouse plus the image must satisfy the requirements with no index: prove it with pip.

    Always by resolution for the target (`--dry-run`); where this Python is the
    target's, by a real install into an empty folder too. Returns what was done.
    """
    stubs = work / "verify-stubs"
    constraints = image_stubs(image, cfg.replace, stubs, stand_in)
    base = ["install", "--no-index", "--find-links", str(wheels), "--find-links", str(stubs), "-c", str(constraints),
            "--ignore-installed", "--quiet"]
    target = work / "verify-target"
    same_python = f"{sys.version_info.major}.{sys.version_info.minor}" == cfg.python_version
    if same_python:
        proc = _pip([*base, "--target", str(target), *requirements])
        how = "installed with --no-index into an empty folder"
    else:
        proc = _pip([*base, "--dry-run", "--target", str(target), *_target_args(cfg), *requirements],
                    cfg.python_version)
        how = f"resolved with --no-index for Python {cfg.python_version} (this is Python " \
              f"{sys.version_info.major}.{sys.version_info.minor}: no real install here)"
    if proc.returncode != 0:
        raise WheelhouseError(f"the wheelhouse is not complete: {requirements} do not install from it and the "
                              f"image with --no-index:\n{proc.stderr[-2000:]}")
    return how


def build_wheelhouse(cfg: WheelsConfig, image: dict[str, str], dest: Path, image_name: str = "") -> dict:
    """Resolve, download and verify; returns the manifest, also written beside the wheels."""
    stand_in: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="aimokit-wheelhouse-") as tmp:
        work = Path(tmp)
        pins = resolve(cfg.requirements, image, cfg, work, stand_in)
        report = trim_report(json.loads((work / "resolve-report.json").read_text()), work)
        try:
            wheels, _ = wheel_cache.fetch(pins, dest, cfg, download)  # from the cache where it has them
        except wheel_cache.WheelCacheError as e:
            raise WheelhouseError(str(e)) from None
        how = verify(cfg.requirements, dest, image, cfg, work, stand_in)
    manifest = {
        "requirements": cfg.requirements,
        "python_version": cfg.python_version,
        "image_list": image_name or "none: the whole closure ships",
        "shipped": [f"{p.name}=={p.version}" for p in pins],
        "replaced_over_image": sorted(canonical(r) for r in cfg.replace),
        "image_stands_in_for_pins": {n: f"the image's {image[n]} for =={v}" for n, v in sorted(stand_in.items())},
        "image_packages_relied_on": len(set(image) - {canonical(r) for r in cfg.replace}),
        "verified": how,
        "bytes": sum(w.stat().st_size for w in wheels),
    }
    (dest / "wheelhouse.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (dest / "resolve-report.json").write_text(json.dumps(report, indent=1) + "\n")  # why each wheel ships
    for f in ("wheelhouse.json", "resolve-report.json"):
        os.utime(dest / f, (wheel_cache.FIXED_MTIME, wheel_cache.FIXED_MTIME))
    return manifest
