"""`build.py preflight`: everything that can be checked before a push, as one table; `push` runs it first.

Why: each of these failures otherwise costs a GPU run to find (and a code-competition run is hours): an
input not where Kaggle mounts it, a wheel the image's Python or driver cannot load, gpt-oss's vocabulary
missing, a model shard cut short, a kernel file the real `kaggle_evaluation` gateway cannot drive, an
engine that starts after the gateway's 15-minute limit. Each row says ok, warn, fail or skip, and why; a
skipped row names what would let it run. A failed row stops a push before anything is uploaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import mounts, vocab
from ..config import KernelConfig, to_toml
from ..weights import check_model_dir
from . import image_facts
from .config import ShipConfig
from .inputs import required_paths
from .wheel_cache import sha256_of

STATUSES = ("ok", "warn", "fail", "skip")


@dataclass(frozen=True)
class Check:
    what: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status


def table(checks: list[Check]) -> str:
    width = max((len(c.what) for c in checks), default=10)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{c.what:<{width}}  {c.status:<6}  {c.detail}" for c in checks]
    return "\n".join(lines)


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "fail"]


# -- inputs -------------------------------------------------------------------

def materialize(listing: dict[str, int], root: Path) -> None:
    """The probe's /kaggle/input folder listing as empty folders under `root`, for the kernel's own resolver."""
    for rel in listing:
        if rel != "." and not rel.startswith(("/", "..")) and ".." not in Path(rel).parts:
            (root / rel).mkdir(parents=True, exist_ok=True)


def check_inputs(shipped: KernelConfig, facts: dict[str, Any] | None, probed: set[str]) -> Check:
    """Each `kaggle:` input of the shipped config resolved by mounts.py against the probe's listing.

    Only sources the probe had attached can be in its listing; the kit's own datasets (source, wheels,
    adapters) are found by their marker files wherever Kaggle mounts them."""
    values = [v for v in required_paths(shipped) if v.startswith(mounts.PREFIX)]
    if not values:
        return Check("inputs", "ok", "the kernel names no Kaggle inputs by source")
    listing = (facts or {}).get("kaggle_input") or {}
    if not listing:
        return Check("inputs", "skip", "not checked: no probe listing of /kaggle/input (run `build.py probe-image`, "
                                       "then `build.py output --probe`)")
    found, missing, unprobed = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        materialize(listing, Path(tmp))
        for value in values:
            kind, ref, rest = mounts.parse(value)  # type: ignore[misc]
            if mounts.source_of(kind, ref) not in probed:
                unprobed.append(value)
                continue
            try:
                _, how = mounts.resolve(f"{mounts.PREFIX}{kind}/{'/'.join(ref)}", tmp)
                found.append(f"{mounts.source_of(kind, ref)} by {how}")
            except mounts.MountError:
                missing.append(value)
    if missing:
        return Check("inputs", "fail", f"not in the probe's /kaggle/input: {missing}; attach those sources to the "
                                       "kernel (kernels[].dataset_sources, model_sources, competition)")
    detail = "; ".join(found) or "none of them were attached to the probe"
    if unprobed:
        return Check("inputs", "warn", f"{detail}; not attached when the probe ran, so unchecked: {unprobed}")
    return Check("inputs", "ok", detail + " (paths inside them: folders only are listed)")


# -- wheelhouse, vocabulary, model ----------------------------------------------

def check_wheelhouse(cfg: ShipConfig, facts: dict[str, Any] | None, wheels: Path | None) -> list[Check]:
    if wheels is None:
        return [Check("wheelhouse", "skip", "no wheels shipped (--no-wheels): the image must have them; the "
                                            "notebook's first cell checks that vLLM imports")]
    if facts is None:
        return [Check("wheelhouse", "warn", "the image was not probed: the wheelhouse was resolved for "
                                            f"{'an assumed image' if not cfg.wheels.image else cfg.wheels.image}")]
    shipped = json.loads((wheels / "wheelhouse.json").read_text()).get("shipped", [])
    out = [Check("wheels: python", *image_facts.check_python(cfg.wheels.python_version, facts)),
           Check("wheels: platform", *image_facts.check_platform(cfg.wheels.platforms, facts)),
           Check("wheels: cuda", *image_facts.check_cuda(shipped, facts))]
    if not facts.get("kaggle"):
        out.append(Check("wheels: image", "warn", "the image list was recorded off Kaggle, not by a Kaggle probe"))
    return out


def check_vocab(wheels: Path | None) -> Check:
    if wheels is None:
        return Check("harmony vocabulary", "fail", f"a harmony kernel needs {vocab.FILE} from the wheels dataset, "
                                                   "and none is shipped (--no-wheels)")
    path = wheels / vocab.FILE
    if not path.is_file():
        return Check("harmony vocabulary", "fail", f"{path} is missing; rebuild the wheels dataset")
    digest = sha256_of(path)
    if digest != vocab.SHA256:
        return Check("harmony vocabulary", "fail", f"{path} has sha256 {digest}, not tiktoken's {vocab.SHA256}")
    return Check("harmony vocabulary", "ok", f"{vocab.FILE}, sha256 {digest[:12]}... (tiktoken's)")


def check_model(cfg: ShipConfig, shipped: KernelConfig) -> Check:
    model = cfg.preflight.model_dir or shipped.engine.model
    if not model or model.startswith(("$", mounts.PREFIX)) or not Path(model).is_dir():
        return Check("model weights", "skip", "not checked: no local copy of the attached model (set "
                                              "preflight.model_dir to one)")
    return Check("model weights", *check_model_dir(model))


# -- gateway contract, engine start ----------------------------------------------

def check_gateway(root: Path, cfg: ShipConfig, shipped: KernelConfig, kernel_file: Path) -> Check:
    """The kernel file run under the real `kaggle_evaluation` of the competition's data folder, with the
    embedded default model on the dry-run's settings: every row of test.csv must come back answered."""
    data = cfg.preflight.competition_data
    if not data:
        return Check("gateway contract", "skip", "not checked: set preflight.competition_data to the competition's "
                                                 "data folder (test.csv and kaggle_evaluation/)")
    data_dir = Path(data)
    if not (data_dir / "kaggle_evaluation").is_dir() or not (data_dir / "test.csv").is_file():
        return Check("gateway contract", "fail", f"{data_dir} lacks kaggle_evaluation/ or test.csv: give the "
                                                 "folder the competition's data downloads as")
    from ..models import resolve_model
    import polars as pl

    comp = replace(shipped.competition, data_dir=str(data_dir.resolve()), time_limit_s=cfg.preflight.gateway_time_s)
    with tempfile.TemporaryDirectory(prefix="aimokit-preflight-") as tmp:
        work = Path(tmp) / "working"
        work.mkdir()
        run_cfg = KernelConfig.load(root / "configs" / "dry-run.toml", {"run.output_dir": str(Path(tmp) / "out")})
        run_cfg = replace(run_cfg, competition=comp,
                          engine=replace(run_cfg.engine, model=resolve_model(run_cfg.engine.model)))
        (Path(tmp) / "kernel.toml").write_text(to_toml(run_cfg))
        env = {k: v for k, v in os.environ.items() if k != "KAGGLE_IS_COMPETITION_RERUN"}
        env.update(AIMOKIT_CONFIG=str(Path(tmp) / "kernel.toml"), AIMOKIT_SRC=str(root / "src"))
        t0 = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, str(kernel_file)], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=cfg.preflight.gateway_time_s + 300)
        except subprocess.TimeoutExpired:
            return Check("gateway contract", "fail", f"the kernel ran past {cfg.preflight.gateway_time_s:.0f} s + 300 s")
        wall = time.monotonic() - t0
        sub = work / "submission.parquet"
        if proc.returncode != 0 or not sub.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return Check("gateway contract", "fail", f"the kernel exited {proc.returncode} "
                                                     f"{'without' if not sub.is_file() else 'after'} writing "
                                                     f"submission.parquet: {' | '.join(tail)}")
        got, want = pl.read_parquet(sub), pl.read_csv(data_dir / "test.csv")
    ids = want.columns[0]
    if got.columns[:2] != ["id", "answer"] or sorted(map(str, got["id"])) != sorted(map(str, want[ids])):
        return Check("gateway contract", "fail", f"submission.parquet has columns {got.columns} and "
                                                 f"{got.height} rows for test.csv's {want.height}")
    lo, hi = comp.answer_min, comp.answer_max
    bad = [a for a in got["answer"].to_list() if not isinstance(a, int) or not lo <= a <= hi]
    if bad:
        return Check("gateway contract", "fail", f"answers outside {lo}..{hi} or not integers: {bad[:5]}")
    return Check("gateway contract", "ok", f"{got.height} rows answered through {comp.server_module} in {wall:.0f} s "
                                           "(the embedded default model)")


def check_engine_start(cfg: ShipConfig) -> Check:
    path = cfg.preflight.engine_summary
    limit = cfg.preflight.serve_limit_s
    if not path:
        return Check("engine start", "skip", "not measured: run a rehearsal on the machine shape and set "
                                             "preflight.engine_summary to its kernel_summary.json")
    try:
        start = float(json.loads(Path(path).read_text())["engine_start_s"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Check("engine start", "fail", f"{path}: no engine_start_s to read ({e})")
    said = f"{start:.0f} s measured ({Path(path).name}) against the {limit:.0f} s serve limit"
    if start > limit:
        return Check("engine start", "fail", said + ": load the model lazily in the first predict, or faster")
    return Check("engine start", "warn" if start > 0.8 * limit else "ok", said)


# -- all of it --------------------------------------------------------------------

def preflight(root: Path, cfg: ShipConfig, built: dict[str, Any]) -> list[Check]:
    """Every check, for every kernel, over what `build_all` produced."""
    wheels = built["datasets"].get("wheels")
    try:
        facts = image_facts.probe_facts(root, cfg.wheels.image)[1] if cfg.wheels.image else None
    except ValueError as e:
        return [Check("probe", "fail", str(e))]
    checks = check_wheelhouse(cfg, facts, wheels)
    source = built["datasets"]["source"]
    for k in cfg.kernels:
        shipped = KernelConfig.load(source / f"{k.name}.toml")
        probed = {*cfg.source_refs(k), *([k.competition] if k.competition else []), *k.model_sources}
        named = [replace(c, what=f"{k.name}: {c.what}") for c in (
            check_inputs(shipped, facts, probed),
            *([check_vocab(wheels)] if shipped.solver.protocol == "harmony" else []),
            check_model(cfg, shipped),
            check_gateway(root, cfg, shipped, root / k.file))]
        checks += named
    checks.append(check_engine_start(cfg))
    return checks
