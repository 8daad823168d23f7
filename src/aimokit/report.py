"""The dry-run report: per problem, and in total, from results.jsonl.

It reads what the kernel wrote as it went (so a killed kernel still gets a
report of what it finished) and the submission the gateway wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from .io import atomic_write


def read_results(path: Path) -> list[dict[str, Any]]:
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return rows


def build_report(run_dir: Path, expected: int, limit_s: float, wall_s: float | None = None) -> dict[str, Any]:
    rows = read_results(run_dir / "results.jsonl")
    summary_file = run_dir / "kernel_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    sub_file = run_dir / "submission.parquet"
    submission = pl.read_parquet(sub_file) if sub_file.is_file() else None
    graded = [r for r in rows if r.get("correct") is not None]
    tokens = sum(r["tokens"] for r in rows)
    gen_s = sum(r["seconds"] for r in rows)
    elapsed = wall_s if wall_s is not None else summary.get("elapsed_s")
    return {
        "problems_expected": expected,
        "problems_answered": 0 if submission is None else submission.height,
        "complete": submission is not None and submission.height == expected,
        "accuracy": (sum(r["correct"] for r in graded) / len(graded)) if graded else None,
        "graded": len(graded),
        "tokens": tokens,
        "tokens_per_s": tokens / gen_s if gen_s > 0 else None,
        "limit_s": limit_s,
        "elapsed_s": elapsed,
        "budget_used": (elapsed / limit_s) if elapsed and limit_s else None,
        "within_limit": (elapsed <= limit_s) if elapsed else None,
        "engine_start_s": summary.get("engine_start_s"),
        "stopped": {k: sum(1 for r in rows if r["stopped"] == k) for k in sorted({r["stopped"] for r in rows})},
        "per_problem": rows,
    }


def render_markdown(rep: dict[str, Any]) -> str:
    def fmt(v: Any, spec: str = "") -> str:
        return "–" if v is None else format(v, spec)

    acc = rep["accuracy"]
    lines = [
        "# Dry-run report",
        "",
        f"- answered: {rep['problems_answered']} / {rep['problems_expected']}"
        + (" (complete)" if rep["complete"] else " (INCOMPLETE)"),
        f"- accuracy: {fmt(None if acc is None else 100 * acc, '.1f')}% of {rep['graded']} with known answers",
        f"- time: {fmt(rep['elapsed_s'], '.0f')} s of a {rep['limit_s']:.0f} s limit "
        f"({fmt(None if rep['budget_used'] is None else 100 * rep['budget_used'], '.0f')}% used); "
        f"engine start {fmt(rep['engine_start_s'], '.0f')} s",
        f"- generation: {rep['tokens']} tokens, {fmt(rep['tokens_per_s'], '.1f')} tokens/s",
        f"- how problems ended: {rep['stopped']}",
        "",
        "| id | answer | gold | ok | votes | samples | answered | code runs (errors) | tokens | seconds | ended |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["per_problem"]:
        ok = {True: "✓", False: "✗", None: ""}[r.get("correct")]
        votes = ", ".join(f"{k}: {v:g}" for k, v in sorted(r["votes"].items(), key=lambda kv: -kv[1])[:4])
        lines.append(
            f"| {r['id']} | {r['answer']} | {fmt(r.get('gold'))} | {ok} | {votes} | {r['samples']} | "
            f"{r['answered']} | {r['code_runs']} ({r['code_errors']}) | {r['tokens']} | {r['seconds']:.1f} | {r['stopped']} |"
        )
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, expected: int, limit_s: float, wall_s: float | None = None) -> dict[str, Any]:
    rep = build_report(run_dir, expected, limit_s, wall_s)
    atomic_write(run_dir / "report.json", json.dumps(rep, indent=2))
    atomic_write(run_dir / "report.md", render_markdown(rep))
    return rep
