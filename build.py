"""aimokit's command line: thin on purpose, the work lives in src/aimokit.

    python build.py dry-run [--problems FILE] [--time-limit S] [--config TOML] [--set key=value ...]
    python build.py build [--ship TOML] [--out DIR] [--no-wheels]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_PROBLEMS = ROOT.parent / "shared" / "data" / "aime24.jsonl"


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: use section.key=value, e.g. --set solver.samples=8")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw  # a bare string
    return out


def cmd_dry_run(args: argparse.Namespace) -> int:
    from aimokit.config import ConfigError, load_config, to_toml
    from aimokit.models import embedded_default_model
    from aimokit.problems import ProblemFileError, load_problems
    from aimokit.report import write_report

    overrides = _parse_sets(args.set)
    overrides["run.problems"] = str(Path(args.problems).resolve())
    if args.time_limit is not None:
        overrides["competition.time_limit_s"] = float(args.time_limit)
    run_dir = Path(args.out or ROOT / "runs" / time.strftime("dry-run-%Y%m%d-%H%M%S")).resolve()
    overrides["run.output_dir"] = str(run_dir)
    try:
        cfg = load_config(args.config, overrides)
        problems = load_problems(cfg.run.problems, cfg.competition)  # fail before any model work
    except (ConfigError, ProblemFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not cfg.engine.model:
        print("preparing the embedded default model (converted once, then cached)...", file=sys.stderr)
        cfg.engine.model = str(embedded_default_model())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").unlink(missing_ok=True)
    config_path = run_dir / "kernel.toml"
    config_path.write_text(to_toml(cfg))
    print(f"dry-run: {len(problems)} problems from {cfg.run.problems}, limit {cfg.competition.time_limit_s:.0f} s, "
          f"outputs in {run_dir}", file=sys.stderr)

    env = dict(os.environ, AIMOKIT_CONFIG=str(config_path), AIMOKIT_SRC=str(ROOT / "src"),
               AIMOKIT_T0=str(time.time()))
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep the per-problem progress readable
    t0 = time.monotonic()
    # The very file Kaggle runs, in a fresh interpreter, so a crash is the kernel's alone.
    proc = subprocess.run([sys.executable, str(ROOT / "kernels" / "submission.py")], env=env)
    wall = time.monotonic() - t0
    rep = write_report(run_dir, len(problems), cfg.competition.time_limit_s, wall)
    print((run_dir / "report.md").read_text())
    print(f"submission: {run_dir / 'submission.parquet'}\nreport: {run_dir / 'report.md'}")
    if proc.returncode != 0:
        print(f"error: the kernel exited with status {proc.returncode}", file=sys.stderr)
        return proc.returncode or 1
    return 0 if rep["complete"] else 1


def cmd_build(args: argparse.Namespace) -> int:
    from aimokit.adapters import AdapterError
    from aimokit.config import ConfigError
    from aimokit.kaggle.build import BuildError, ShipConfig, build_all, describe
    from aimokit.kaggle.metadata import MetadataError

    try:
        cfg = ShipConfig.load(args.ship)
        built = build_all(ROOT, cfg, Path(args.out), wheels=not args.no_wheels)
    except (ConfigError, MetadataError, AdapterError, BuildError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe(built))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="build.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dry-run", help="run the submission kernel locally on sample problems")
    d.add_argument("--problems", default=str(DEFAULT_PROBLEMS), help="csv / jsonl / parquet with id, problem[, answer]")
    d.add_argument("--time-limit", type=float, default=None, help="seconds (default: the config's)")
    d.add_argument("--config", default=str(ROOT / "configs" / "dry-run.toml"))
    d.add_argument("--out", default=None, help="output folder (default: runs/dry-run-<time>)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    d.set_defaults(func=cmd_dry_run)
    b = sub.add_parser("build", help="write Kaggle dataset and kernel folders under build/")
    b.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
    b.add_argument("--out", default=str(ROOT / "build"))
    b.add_argument("--no-wheels", action="store_true", help="skip the wheelhouse download")
    b.set_defaults(func=cmd_build)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # vLLM spawns processes: keep the guard
    sys.exit(main())
