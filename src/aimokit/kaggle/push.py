"""`build.py push`: built folders to Kaggle, datasets first (each ready before the next step), then the kernels
that mount them. The steps live beside this file, one job each: the client and its retries (client), datasets
(datasets_push), kernels (kernels_push) and a pushed kernel's run, output and submission (runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .build import content_hash
from .client import PushError, PushReport, UploadFailed, _describe, authenticated_api, call, check_user  # noqa: F401
from .config import PushOptions
from .datasets_push import STATE_FILE, load_state, push_dataset, save_state, stage_for_upload  # noqa: F401
from .kernels_push import check_kernel_settings, kernel_settings, push_kernel  # noqa: F401
from .runs import check_output_file, kernel_output, kernel_status, submissions, submit, wait_complete  # noqa: F401


def push_all(api: Any, datasets: dict[str, Path], refs: dict[str, str], kernels: list[Path], out: Path,
             opts: PushOptions, force_kernels: bool = False) -> PushReport:
    """Datasets first (each ready before the next step), then the kernels that mount them.

    A kernel is pushed again (which starts a run on Kaggle) only when it changed,
    a dataset it mounts got a new version, or force_kernels is set.
    """
    report = PushReport()
    state = load_state(out)
    current = ""
    try:
        for name, folder in datasets.items():
            current = f"dataset {refs[name]}"
            push_dataset(api, folder, refs[name], opts, report, state, out)
        for folder in kernels:
            current = f"kernel {folder.name}"
            key = f"kernel:{json.loads((folder / 'kernel-metadata.json').read_text())['id']}"
            digest = content_hash(folder)
            if state.get(key) == digest and not report.pushed and not force_kernels:
                report.skipped.append(key)
                continue
            url, version, warnings = push_kernel(api, folder, opts)
            report.kernels.append(url)
            report.warnings += warnings
            state[key] = digest
            if version:
                state[f"version:{key[len('kernel:'):]}"] = str(version)
            save_state(out, state)
            try:
                report.warnings += check_kernel_settings(api, folder, opts)
            except Exception as e:  # the push landed; a failed read-back is only reported
                report.warnings.append(f"could not read {key[len('kernel:'):]}'s settings back: {_describe(e)}")
    except Exception as e:
        raise PushError(f"push of {current} failed: {_describe(e)}\nalready done: {report.summary()}\n"
                        "run the push again: unchanged datasets are skipped") from e
    return report


def describe_plan(datasets: dict[str, Path], refs: dict[str, str], kernels: list[Path], out: Path) -> str:
    """What `push` would send, with sizes, sending nothing."""
    state = load_state(out)
    lines = []
    for name, folder in datasets.items():
        ref = refs[name]
        unchanged = state.get(ref) == content_hash(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "dataset-metadata.json")
        total = sum(p.stat().st_size for p in files)
        lines.append(f"dataset {ref}: {'unchanged, would be skipped' if unchanged else 'would be pushed'} "
                     f"({len(files)} files, {_size(total)})")
        lines += [f"    {p.relative_to(folder)}  {_size(p.stat().st_size)}" for p in files]
    for folder in kernels:
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        lines.append(f"kernel {meta['id']}: {meta['code_file']} on {meta.get('machine_shape') or 'default'}, "
                     f"internet {'on' if meta['enable_internet'] else 'off'}, "
                     f"inputs {', '.join(meta['dataset_sources'] + meta['competition_sources'] + meta['model_sources'])}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def pushed_version(out: Path, ref: str) -> int | None:
    """The version number the last push of kernel `ref` got, from the push state."""
    v = load_state(out).get(f"version:{ref}")
    return int(v) if v else None
