"""An evaluation's report, beside the metrics it renders: metrics.json, report.md and the accuracy plots of an
`evaluate` output folder, from its responses.parquet (metrics.py computes; this writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from . import responses
from .io import atomic_write
from .metrics import metrics


def plot(m: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [c["k"] for c in m["curve"]]
    ax.plot(ks, [100 * c["maj"] for c in m["curve"]], marker="o", label="maj@k")
    ax.plot(ks, [100 * c["pass"] for c in m["curve"]], marker="s", label="pass@k")
    ax.set_xlabel("samples per problem (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy against samples ({m['problems']} problems)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_samples.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_vs_samples.png")

    per = m["per_problem"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6, 0.25 * len(per)), 5), sharex=True)
    xs = range(len(per))
    a1.bar(xs, [p["seconds"] for p in per], color="tab:blue")
    a1.set_ylabel("seconds")
    a2.bar(xs, [p["tokens"] for p in per], color="tab:orange")
    a2.set_ylabel("tokens")
    a2.set_xticks(list(xs), [str(p["problem_id"]) for p in per], rotation=90, fontsize=7)
    a1.set_title("time and tokens per problem (all samples)")
    fig.tight_layout()
    fig.savefig(out / "time_tokens_per_problem.png", dpi=110)
    plt.close(fig)
    files.append("time_tokens_per_problem.png")
    return files


def render(m: dict[str, Any], meta: dict[str, Any], images: list[str]) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    lines = [
        "# Evaluation report", "",
        f"Model `{meta.get('model') or 'embedded default'}`" + (f" with adapter `{meta['lora']}`" if meta.get("lora") else ""),
        "",
        "| problems | samples | maj | maj 95% CI | pass | pass 95% CI | responses correct | answered | tokens | tok/s | runtime |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {m['problems']} | {m['samples_per_problem']} | {pct(m['maj'])} | {pct(m['maj_ci'][0])}–{pct(m['maj_ci'][1])} "
        f"| {pct(m['pass'])} | {pct(m['pass_ci'][0])}–{pct(m['pass_ci'][1])} | {pct(m['response_accuracy'])} "
        f"| {pct(m['answered'])} | {m['tokens']} | {m['tokens_per_s']} | {meta.get('wall_s', m['seconds'])} s |",
        "",
        "maj: the most frequent extracted answer is right; pass: at least one sample is right. Intervals are Wilson "
        "score intervals over problems. Runtime includes engine start-up "
        f"({meta.get('engine_start_s', '?')} s).", "",
        "| k | maj@k | pass@k |", "|---|---|---|",
    ]
    lines += [f"| {c['k']} | {pct(c['maj'])} | {pct(c['pass'])} |" for c in m["curve"]]
    lines.append("")
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def selection_loss(df: pl.DataFrame, solver: Any) -> dict[str, Any]:
    """The selection loss of the recorded samples under every policy they support, the run's own first."""
    from . import selection
    from .replay import has_entropy, policy_config, problems_of, skip_reason
    from .registry import POLICIES

    entropy = has_entropy(df)
    runnable = {v: policy_config(solver, v) for v in POLICIES.names() if not skip_reason(v, solver, entropy)}
    ran = df.filter(pl.col("chosen").is_not_null()).group_by("problem_id").agg(pl.col("chosen").first())
    chosen = dict(zip(ran["problem_id"].to_list(), ran["chosen"].to_list()))  # GenSelect's picks among them
    return selection.loss(problems_of(df), runnable, solver.vote if solver.vote in runnable else "count", chosen)


def write_report(out: Path, ev: Any, solver: Any = None) -> dict[str, Any]:
    """metrics.json, report.md and the plots of an evaluation folder; `ev` gives z, curve_draws and seed
    (an EvalConfig); `solver` (the run's SamplingConfig, default the kit's) the policies of the selection loss."""
    path = out / responses.FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no responses yet; run `build.py evaluate` first")
    df = pl.read_parquet(path)
    m = metrics(df, ev.z, ev.curve_draws, ev.seed)
    meta_path = out / "eval_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    images = plot(m, out)
    from . import selection
    from .config import SamplingConfig

    m["selection"] = selection_loss(responses.conform(df), solver or SamplingConfig())
    atomic_write(out / "metrics.json", json.dumps(m, indent=2))
    atomic_write(out / "report.md", render(m, meta, images) + "\n" + "\n".join(
        selection.render_loss(m["selection"], [])) + "\n")
    return m
