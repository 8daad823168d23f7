"""aimokit's command line: thin on purpose, the work lives in src/aimokit.

    python build.py dry-run [--problems FILE] [--time-limit S] [--config TOML] [--set key=value ...]
    python build.py build [--ship TOML] [--out DIR] [--no-wheels]
    python build.py push [--ship TOML] [--out DIR] [--no-wheels] [--dry-run] [--message NOTE]
    python build.py push ... [--submit] [--force-kernels]   then: submit [-m MSG] [--version N], submissions
    python build.py preflight [--ship TOML] [--no-wheels] [--competition-data DIR] [--engine-summary FILE] [--model-dir DIR]
    python build.py probe-image [--ship TOML] [--kernel NAME] [--dry-run]
    python build.py status [--ship TOML] [--kernel NAME] [--probe]
    python build.py output [--ship TOML] [--kernel NAME] [--path DIR] [--probe [--into DIR]]
    python build.py evaluate [--problems FILE] [--samples K] [--eval-config TOML] [--config TOML] [--lora DIR] [--out DIR] [--set k=v ...]
                             [--workers N] [--ray [ADDRESS]]
    python build.py dpo-data --responses FILE [FILE ...] [--config TOML] [--out DIR] [--set k=v ...]
    python build.py sft-data --responses FILE [FILE ...] [--config TOML] [--out DIR] [--set k=v ...]
    python build.py train [--config TOML] [--set k=v ...]
    python build.py replay --responses FILE [FILE ...] [--config TOML] [--out DIR] [--compare A B] [--two-run K ...] [--budget]
    python build.py select fit --responses FILE [FILE ...] [--config TOML] [--out FILE] [--folds N] [--features F,...]
    python build.py settings [kernel|eval|dpo-data|sft-data|train|ship] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))



def _add_flags(parser: argparse.ArgumentParser, cls: type, names: tuple[str, ...]) -> None:
    """`--name` flags for some of a job config's fields: help and type from the field, default from the config."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f = fields[name]
        kind = {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                            help=f"{f.metadata['help']} (default: {f.default!r})")


def _flag_values(args: argparse.Namespace, cls: type) -> dict:
    """The flags `_add_flags` made that were given: overrides of the job config."""
    import dataclasses

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


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
    from aimokit.config import KernelConfig, expand_paths, to_toml
    from aimokit.models import resolve_model
    from aimokit.problems import load_problems, sample_problems
    from aimokit.report import write_report

    overrides = _parse_sets(args.set)
    overrides["run.problems"] = str(Path(args.problems or sample_problems()).resolve())
    if args.time_limit is not None:
        overrides["competition.time_limit_s"] = float(args.time_limit)
    run_dir = Path(args.out or ROOT / "runs" / time.strftime("dry-run-%Y%m%d-%H%M%S")).resolve()
    overrides["run.output_dir"] = str(run_dir)
    cfg = expand_paths(KernelConfig.load(args.config, overrides))  # $AIMOKIT_INPUT/... as the kernel will see it
    problems = load_problems(cfg.run.problems, cfg.competition)  # fail before any model work
    if not cfg.engine.model:
        print("preparing the embedded default model (converted once, then cached)...", file=sys.stderr)
    cfg = replace(cfg, engine=replace(cfg.engine, model=resolve_model(cfg.engine.model)))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").unlink(missing_ok=True)
    config_path = run_dir / "kernel.toml"
    config_path.write_text(to_toml(cfg))
    print(f"dry-run: {len(problems)} problems from {cfg.run.problems}, limit {cfg.competition.time_limit_s:.0f} s, "
          f"outputs in {run_dir}", file=sys.stderr)

    env = dict(os.environ, AIMOKIT_CONFIG=str(config_path), AIMOKIT_SRC=str(ROOT / "src"))
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
    from aimokit.kaggle.build import build_all, describe
    from aimokit.kaggle.config import ShipConfig

    cfg = ShipConfig.load(args.ship)
    built = build_all(ROOT, cfg, Path(args.out), wheels=not args.no_wheels)
    print(describe(built))
    return 0


def _ship_overrides(args: argparse.Namespace) -> dict:
    """--set section.key=value, and the preflight flags, as overrides of the ship config."""
    overrides = _parse_sets(getattr(args, "set", []) or [])
    for flag in ("competition_data", "engine_summary", "model_dir"):
        if getattr(args, flag, None):
            overrides[f"preflight.{flag}"] = str(Path(getattr(args, flag)).resolve())
    return overrides


def _preflight(cfg, built) -> bool:
    """Print the preflight table; False when a row failed (nothing may be sent then)."""
    from aimokit.kaggle.preflight import failed, preflight, table

    checks = preflight(ROOT, cfg, built)
    print(table(checks))
    bad = failed(checks)
    if bad:
        print(f"preflight: {len(bad)} check(s) failed ({', '.join(c.what for c in bad)}); nothing was sent",
              file=sys.stderr)
    return not bad


def cmd_preflight(args: argparse.Namespace) -> int:
    from aimokit.kaggle.build import build_all
    from aimokit.kaggle.config import ShipConfig

    cfg = ShipConfig.load(args.ship, _ship_overrides(args))
    built = build_all(ROOT, cfg, Path(args.out), wheels=not args.no_wheels)
    return 0 if _preflight(cfg, built) else 2


def cmd_push(args: argparse.Namespace) -> int:
    from aimokit.kaggle.build import build_all
    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.push import authenticated_api, check_user, describe_plan, push_all

    out = Path(args.out)
    cfg = ShipConfig.load(args.ship, _ship_overrides(args))
    if args.message:
        cfg = replace(cfg, push=replace(cfg.push, version_note=args.message))
    api = None
    if not args.dry_run:  # credentials first: minutes of bundling must not end in "no key"
        api = authenticated_api()
        check_user(api, cfg.user)
    built = build_all(ROOT, cfg, out, wheels=not args.no_wheels)
    if not _preflight(cfg, built):  # before any upload: a failed row would cost a GPU run to find
        return 2
    slugs = cfg.dataset_slugs()
    refs = {name: cfg.ref(slugs[name]) for name in built["datasets"]}
    if args.dry_run:
        print(describe_plan(built["datasets"], refs, built["kernels"], out))
        print("dry run: nothing was sent")
        return 0
    report = push_all(api, built["datasets"], refs, built["kernels"], out, cfg.push,
                      force_kernels=args.force_kernels)
    print(report.summary())
    if args.submit:
        from aimokit.kaggle.push import wait_complete

        for entry in cfg.kernels:
            ref = cfg.ref(entry.slug)
            print(f"waiting for {ref} to complete before submitting...")
            wait_complete(api, ref, cfg.push, args.wait_s)
            print(_submit(api, cfg, entry, None, args.message, out))
    return 0


def _kernel_entry(cfg, name: str | None):
    from aimokit.config import ConfigError

    names = [k.name for k in cfg.kernels]
    entry = next((k for k in cfg.kernels if k.name == (name or names[0])), None)
    if entry is None:
        raise ConfigError(f"no kernel named {name!r} in the ship config; it has {names}")
    return entry


def _kernel_ref(cfg, name: str | None) -> str:
    return cfg.ref(_kernel_entry(cfg, name).slug)


def _submit(api, cfg, entry, version: int | None, message: str, out: Path) -> str:
    from aimokit.config import ConfigError
    from aimokit.kaggle.push import pushed_version, submit

    ref = cfg.ref(entry.slug)
    version = version or pushed_version(out, ref)
    if version is None:
        raise ConfigError(f"no pushed version of {ref} is recorded in {out}/push-state.json; "
                          "push it first, or pass --version N (Kaggle needs an explicit version)")
    if not entry.competition:
        raise ConfigError(f"kernel {entry.name} has no competition in the ship config")
    from aimokit.registry import INTERFACES

    written = INTERFACES.get(cfg.kernel_config(entry, ROOT).competition.interface).submission_file
    msg = submit(api, entry.competition, ref, version, message or cfg.push.version_note, cfg.push, written)
    return f"submitted {ref} version {version} to {entry.competition}: {msg}"


def cmd_submit(args: argparse.Namespace) -> int:
    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.push import authenticated_api

    cfg = ShipConfig.load(args.ship)
    print(_submit(authenticated_api(), cfg, _kernel_entry(cfg, args.kernel), args.version, args.message,
                  Path(args.out)))
    return 0


def cmd_submissions(args: argparse.Namespace) -> int:
    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.push import authenticated_api, submissions

    cfg = ShipConfig.load(args.ship)
    entry = _kernel_entry(cfg, args.kernel)
    rows = submissions(authenticated_api(), entry.competition, cfg.push, limit=args.limit)
    print(f"{'date':<26} {'status':<9} {'public':>8} {'private':>8}  description")
    for r in rows:
        print(f"{r['date']:<26} {r['status']:<9} {r['public_score'] or '-':>8} {r['private_score'] or '-':>8}  "
              f"{r['description']}" + (f"  [{r['error']}]" if r["error"] else ""))
    return 0


def cmd_probe_image(args: argparse.Namespace) -> int:
    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.probe import build_probe
    from aimokit.kaggle.push import authenticated_api, check_user, describe_plan, push_all

    out = Path(args.out)
    cfg = ShipConfig.load(args.ship)
    entry = _kernel_entry(cfg, args.kernel)
    api = None
    if not args.dry_run:
        api = authenticated_api()
        check_user(api, cfg.user)
    folder = build_probe(ROOT, cfg, entry, out)
    if args.dry_run:
        print(describe_plan({}, {}, [folder], out))
        print("dry run: nothing was sent")
        return 0
    report = push_all(api, {}, {}, [folder], out, cfg.push, force_kernels=True)
    print(report.summary())
    print("when it completes (`build.py status --probe`), `build.py output --probe` records its image list")
    return 0


def _status_ref(cfg, args) -> str:
    if getattr(args, "probe", False):
        from aimokit.kaggle.probe import probe_ref

        return probe_ref(cfg, _kernel_entry(cfg, args.kernel))
    return _kernel_ref(cfg, args.kernel)


def cmd_status(args: argparse.Namespace) -> int:
    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.push import authenticated_api, kernel_status

    cfg = ShipConfig.load(args.ship)
    st = kernel_status(authenticated_api(), _status_ref(cfg, args), cfg.push)
    print(f"{st['kernel']}: {st['status']}" + (f" ({st['failure_message']})" if st["failure_message"] else ""))
    return 0 if st["status"] != "error" else 1


def cmd_output(args: argparse.Namespace) -> int:
    from aimokit.kaggle.config import ShipConfig
    from aimokit.kaggle.push import authenticated_api, kernel_output

    cfg = ShipConfig.load(args.ship)
    ref = _status_ref(cfg, args)
    path = Path(args.path or ROOT / "runs" / "kaggle" / ref.split("/")[1])
    api = authenticated_api()
    files = kernel_output(api, ref, path, cfg.push)
    if args.probe:
        from aimokit.kaggle.probe import save_probe_output
        from aimokit.kaggle.push import kernel_settings

        image = str(kernel_settings(api, ref, cfg.push).get("docker_image") or "")  # what Kaggle ran it on
        _, summary = save_probe_output(path, Path(args.into), _kernel_entry(cfg, args.kernel), image)
        print(summary)
        return 0
    print("\n".join(files) if files else f"{ref} has no output yet")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aimokit.config import KernelConfig, expand_paths
    from aimokit.eval_report import write_report
    from aimokit.evaluate import EvalConfig, run_evaluation, run_workers
    from aimokit.models import resolve_model
    from aimokit.problems import load_problems, sample_problems
    from aimokit.serving import setup_logging

    setup_logging()
    overrides = _parse_sets(args.set)
    if args.lora:
        overrides["engine.lora"] = str(Path(args.lora).resolve())
    ev = EvalConfig.load(args.eval_config, _flag_values(args, EvalConfig))
    out = Path(args.out or ROOT / "runs" / time.strftime("eval-%Y%m%d-%H%M%S")).resolve()
    cfg = expand_paths(KernelConfig.load(args.config, overrides))
    problems = load_problems(ev.problems or sample_problems(), cfg.competition)
    if ev.limit:
        problems = problems[:ev.limit]
    cfg = replace(cfg, engine=replace(cfg.engine, model=resolve_model(cfg.engine.model)))
    if ev.ray:
        from aimokit.evaluate_ray import run_ray

        run_ray(cfg, problems, out, ev)
    else:
        (run_workers if ev.workers > 1 else run_evaluation)(cfg, problems, out, ev)
    write_report(out, ev, cfg.solver)
    print((out / "report.md").read_text())
    print(f"responses: {out / 'responses.parquet'}\nreport: {out / 'report.md'}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from aimokit.config import KernelConfig
    from aimokit.io import atomic_write
    from aimokit.replay import problems_of, read, render, replay

    kernel = KernelConfig.load(args.config, _parse_sets(args.set)) if args.config or args.set else None
    base = kernel.solver if kernel else None  # its weights and rules
    df = read(args.responses)
    if args.reread:  # answers read again from the texts, under the config's protocol and answer region
        from aimokit.replay import reread

        df = reread(df, base or KernelConfig().solver, kernel.competition if kernel else KernelConfig().competition)
    result = replay(df, base, compare=[tuple(c) for c in args.compare] if args.compare else None,
                    two_run=args.two_run, draws=args.draws, seed=args.seed)
    if args.budget:
        from aimokit.budget_replay import Throughput, simulate

        tp = Throughput(args.tok_s, args.seq_tok_s, args.startup_s)
        result["budget"] = simulate(problems_of(df), kernel or KernelConfig(), tp, args.per_run, args.runs, args.seed)
    out = Path(args.out or Path(args.responses[0]).resolve().parent)
    atomic_write(out / "replay.json", json.dumps(result, indent=2))
    atomic_write(out / "replay.md", render(result))
    print(render(result))
    print(f"replay: {out / 'replay.md'}, {out / 'replay.json'}")
    return 0


def cmd_select_fit(args: argparse.Namespace) -> int:
    from aimokit.config import KernelConfig
    from aimokit.replay import has_entropy, problems_of, read
    from aimokit.select_fit import fit_report, render, write

    kernel = KernelConfig.load(args.config, _parse_sets(args.set)) if args.config or args.set else KernelConfig()
    df = read(args.responses)
    names = [n.strip() for n in args.features.split(",") if n.strip()] if args.features else None
    sel, report = fit_report(problems_of(df), kernel.solver, args.folds, args.seed, args.l2, names, has_entropy(df))
    out = Path(args.out or Path(args.responses[0]).resolve().parent / "selector.json")
    write(sel, report, out)
    print(render(report))
    print(f"selector: {out} (solver.vote = \"learned\", solver.selector = \"{out}\")")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from aimokit.settings_doc import jobs, markdown, text

    print(markdown() if args.markdown else text(jobs()[args.job]))
    return 0


def _data_config(cls, args: argparse.Namespace):
    """A data job's config: its TOML, then --set, --responses and --out on top."""
    overrides = _parse_sets(args.set)
    if args.responses:
        overrides["responses"] = [str(Path(r).resolve()) for r in args.responses]
    if args.out:
        overrides["out"] = args.out
    return cls.load(args.config, overrides)


def cmd_dpo_data(args: argparse.Namespace) -> int:
    from aimokit.dpo_data import DPODataConfig, build_dpo_data, format_stats

    cfg = _data_config(DPODataConfig, args)
    stats = build_dpo_data(cfg)
    print(format_stats(stats))
    print(f"pairs: {Path(cfg.out) / 'train.parquet'}, {Path(cfg.out) / 'val.parquet'}; stats: {Path(cfg.out) / 'stats.json'}")
    return 0


def cmd_sft_data(args: argparse.Namespace) -> int:
    from aimokit.sft_data import SFTDataConfig, build_sft_data

    cfg = _data_config(SFTDataConfig, args)
    stats = build_sft_data(cfg)
    print(f"traces: {stats['traces']['train']} train, {stats['traces']['val']} val "
          f"({stats['problems']['train']} + {stats['problems']['val']} problems)")
    print(f"traces: {Path(cfg.out) / 'train.parquet'}, {Path(cfg.out) / 'val.parquet'}; stats: {Path(cfg.out) / 'stats.json'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from aimokit.train import TrainConfig, train

    cfg = TrainConfig.load(args.config, _parse_sets(args.set))
    saved = train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch: the main process reports
        return 0
    use = "engine.model" if cfg.finetune == "full" else "engine.lora"
    print(f"{'model' if cfg.finetune == 'full' else 'adapter'}: {saved} (the kernel's {use})\n"
          f"log: {Path(cfg.output_dir) / 'log.jsonl'}; curves: {Path(cfg.output_dir) / 'train_curves.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="build.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dry-run", help="run the submission kernel locally on sample problems")
    d.add_argument("--problems", default=None,
                   help="csv / jsonl / parquet with id, problem[, answer] (default: the 30 AIME 2024 problems)")
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
    p = sub.add_parser("push", help="build, then create or version the datasets and push the kernels")
    p.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
    p.add_argument("--out", default=str(ROOT / "build"))
    p.add_argument("--no-wheels", action="store_true", help="leave the wheelhouse out")
    p.add_argument("--dry-run", action="store_true", help="print what would be pushed (tree and sizes); send nothing")
    p.add_argument("--message", default="", help="version note for new dataset versions")
    p.add_argument("--force-kernels", action="store_true", help="push (and so rerun) kernels even if unchanged")
    p.add_argument("--submit", action="store_true", help="wait for each pushed kernel to complete, then submit it")
    p.add_argument("--wait-s", type=float, default=9 * 3600, help="how long --submit waits for a run")
    p.set_defaults(func=cmd_push)
    pf = sub.add_parser("preflight", help="build, then check everything that can be checked before a push "
                                          "(inputs, wheels against the image, vocabulary, weights, gateway, start)")
    pf.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
    pf.add_argument("--out", default=str(ROOT / "build"))
    pf.add_argument("--no-wheels", action="store_true", help="leave the wheelhouse out (the image has it)")
    pf.set_defaults(func=cmd_preflight)
    for q in (p, pf):
        q.add_argument("--competition-data", default=None,
                       help="the competition's data folder: run each kernel under its real kaggle_evaluation")
        q.add_argument("--engine-summary", default=None, help="kernel_summary.json of a run on the machine shape")
        q.add_argument("--model-dir", default=None, help="a local copy of the attached model, to check its weights")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a ship config value, e.g. preflight.serve_limit_s=900")
    sb = sub.add_parser("submit", help="submit a pushed kernel version to its competition")
    sb.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
    sb.add_argument("--out", default=str(ROOT / "build"), help="where push-state.json records pushed versions")
    sb.add_argument("--kernel", default=None, help="kernel name in the ship config (default: the first)")
    sb.add_argument("--version", type=int, default=None, help="kernel version (default: the last pushed)")
    sb.add_argument("-m", "--message", default="", help="submission description")
    sb.set_defaults(func=cmd_submit)
    ss = sub.add_parser("submissions", help="status and scores of recent submissions to the kernel's competition")
    ss.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
    ss.add_argument("--kernel", default=None, help="kernel name in the ship config (default: the first)")
    ss.add_argument("--limit", type=int, default=20)
    ss.set_defaults(func=cmd_submissions)
    pi = sub.add_parser("probe-image", help="push a probe kernel on the kernel's machine shape (internet off) "
                                            "that records its image: Python, pip list, CUDA, driver, GPU, disk")
    pi.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
    pi.add_argument("--out", default=str(ROOT / "build"))
    pi.add_argument("--kernel", default=None, help="whose machine shape and inputs (default: the first kernel)")
    pi.add_argument("--dry-run", action="store_true", help="build the probe kernel and print it; send nothing")
    pi.set_defaults(func=cmd_probe_image)
    for name, func, helptext in (("status", cmd_status, "a pushed kernel's state"),
                                 ("output", cmd_output, "download a kernel's output and log")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--ship", default=str(ROOT / "configs" / "ship.toml"))
        q.add_argument("--kernel", default=None, help="kernel name in the ship config (default: the first)")
        q.add_argument("--probe", action="store_true", help="the probe-image kernel of that kernel's machine shape")
        if name == "output":
            q.add_argument("--path", default=None, help="where to write (default: runs/kaggle/<slug>)")
            q.add_argument("--into", default=str(ROOT / "datasets" / "wheels"),
                           help="with --probe: where image-<shape>.txt and .probe.json go")
        q.set_defaults(func=func)
    e = sub.add_parser("evaluate", help="K samples per labelled problem: responses.parquet, maj/pass report, plots")
    from aimokit.evaluate import EvalConfig

    _add_flags(e, EvalConfig, ("problems", "samples", "concurrency", "limit", "workers", "write_every_s", "retries"))
    e.add_argument("--ray", dest="ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="evaluate on Ray: --workers engines as actors on one queue; no ADDRESS: a local Ray, "
                        "'auto' or host:port: a running cluster (README, 'Evaluate on Ray')")
    e.add_argument("--eval-config", default=None, help="an EvalConfig TOML (flags override it)")
    e.add_argument("--config", default=str(ROOT / "configs" / "dry-run.toml"), help="the kernel config that solves")
    e.add_argument("--lora", default=None, help="a LoRA adapter directory")
    e.add_argument("--out", default=None, help="output folder (default: runs/eval-<time>); rerun it to resume")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a kernel config value")
    e.set_defaults(func=cmd_evaluate)
    g = sub.add_parser("dpo-data", help="preference pairs from evaluated responses (polars)")
    g.add_argument("--responses", nargs="+", default=None)
    g.add_argument("--config", default=None, help="a DPODataConfig TOML")
    g.add_argument("--out", default=None)
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    g.set_defaults(func=cmd_dpo_data)
    f = sub.add_parser("sft-data", help="SFT traces (correct responses, tool results marked) from evaluated responses, "
                                       "and/or reference solutions (--set solutions=FILE)")
    f.add_argument("--responses", nargs="+", default=None)
    f.add_argument("--config", default=None, help="an SFTDataConfig TOML")
    f.add_argument("--out", default=None)
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    f.set_defaults(func=cmd_sft_data)
    t = sub.add_parser("train", help="DPO or SFT with TRL + LoRA")
    t.add_argument("--config", default=str(ROOT / "configs" / "train-dpo.toml"))
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    t.set_defaults(func=cmd_train)
    rp = sub.add_parser("replay", help="re-score recorded samples under every vote and early-stop policy (no GPU)")
    rp.add_argument("--responses", nargs="+", required=True, help="responses.parquet files written by evaluate")
    rp.add_argument("--config", default=None, help="a kernel config whose solver weights and rules to start from")
    rp.add_argument("--out", default=None, help="where replay.md / replay.json go (default: beside the first file)")
    rp.add_argument("--reread", action="store_true", help="read each answer again from its response text under "
                    "the config's solver.protocol and solver.answer_region (compare reading rules)")
    rp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a kernel setting, e.g. solver.answer_region=anywhere")
    rp.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"), help="a paired comparison of two "
                    "vote policies on the same problems (default: the config's solver.vote against count)")
    rp.add_argument("--two-run", type=int, nargs="+", metavar="K", help="AIMO-3's two-run score from runs of K "
                    "samples drawn from the recorded ones, per policy (exact where the draws are few)")
    rp.add_argument("--draws", type=int, default=2000, help="bootstrap resamples and random draws per estimate")
    rp.add_argument("--budget", action="store_true", help="simulate the config's time budget over whole runs "
                    "(its [budget], [solver] and competition limit) from the recorded tokens")
    rp.add_argument("--tok-s", type=float, default=1575.0, help="budget: the engine's tokens/s, all sequences")
    rp.add_argument("--seq-tok-s", type=float, default=226.0, help="budget: one sequence's tokens/s at most")
    rp.add_argument("--startup-s", type=float, default=300.0, help="budget: engine start, paid from the limit")
    rp.add_argument("--per-run", type=int, default=50, help="budget: problems per simulated run")
    rp.add_argument("--runs", type=int, default=200, help="budget: simulated runs")
    rp.add_argument("--seed", type=int, default=0)
    rp.set_defaults(func=cmd_replay)
    sl = sub.add_parser("select", help="fit a learned selector of candidate answers on recorded samples")
    sl_sub = sl.add_subparsers(dest="select_command", required=True)
    sf = sl_sub.add_parser("fit", help="fit, cross-validate (grouped by problem) against every built-in policy, "
                                       "and write the selector JSON that solver.vote = 'learned' reads")
    sf.add_argument("--responses", nargs="+", required=True, help="responses.parquet or recorded-samples .jsonl")
    sf.add_argument("--config", default=None, help="a kernel config whose solver weights the built-ins use")
    sf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sf.add_argument("--out", default=None, help="the selector file (default: selector.json beside the first file)")
    sf.add_argument("--folds", type=int, default=5)
    sf.add_argument("--seed", type=int, default=0)
    sf.add_argument("--l2", type=float, default=1.0, help="the L2 penalty of the logistic regression")
    sf.add_argument("--features", default=None, help="comma-separated features (default: every one the files hold)")
    sf.set_defaults(func=cmd_select_fit)
    st = sub.add_parser("settings", help="every setting of a job config, with its default and help")
    st.add_argument("job", nargs="?", default="kernel", choices=["kernel", "eval", "dpo-data", "sft-data", "train", "ship"])
    st.add_argument("--markdown", action="store_true", help="all jobs as the Markdown of docs/settings.md")
    st.set_defaults(func=cmd_settings)
    args = ap.parse_args(argv)
    from aimokit.errors import AimokitError

    try:
        return args.func(args)
    except AimokitError as e:  # the one place: every kit error names its fix, so one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # vLLM spawns processes: keep the guard
    sys.exit(main())
