"""`build.py select fit`: fit a selector on recorded samples and say, honestly, whether it beats the built-ins.

The model written is fitted on every problem; the figures reported are cross-validated, grouped by problem
(a problem's candidates are never split between fitting and scoring), and each built-in policy is scored
on the same problems, so the comparison is paired: the difference in problems solved, its bootstrap
interval and the sign test (aimokit.selection.paired).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from . import __version__, selection, selector
from .candidates import FEATURES, available
from .config import SamplingConfig
from .errors import AimokitError
from .registry import POLICIES
from .replay import policy_config, skip_reason


class SelectFitError(AimokitError, ValueError):
    """Recorded samples a selector cannot be fitted on; the message says what is missing."""


def fit_report(problems: dict[str, tuple[int | None, list]], base: SamplingConfig, folds: int = 5, seed: int = 0,
               l2: float = 1.0, names: list[str] | None = None, has_entropy: bool = False,
               draws: int = 2000) -> tuple[selector.Selector, dict[str, Any]]:
    """(the selector fitted on all problems, the cross-validated report against every built-in policy)."""
    graded = [(pid, gold, [v for v, _ in s if v is not None]) for pid, (gold, s) in problems.items()
              if gold is not None]
    if len(graded) < 2:
        raise SelectFitError(f"select fit needs at least 2 graded problems; these samples have {len(graded)}")
    have = available([v for _, _, v in graded])
    left_out = {n: why for n, why in have.items() if why}
    if names is None:
        names = [n for n in FEATURES if not have[n]]
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise SelectFitError(f"--features {unknown}: not features of this kit ({', '.join(FEATURES)})")
    lacking = [n for n in names if have[n]]
    if lacking:
        raise SelectFitError(f"--features {lacking}: {'; '.join(f'{n}: {have[n]}' for n in lacking)}")
    data = [(gold, votes) for _, gold, votes in graded]
    try:
        picks = selector.cross_validate(data, folds, seed, l2, names)
        sel = selector.fit(data, names, l2, __version__)
    except selector.SelectorError as e:
        raise SelectFitError(str(e)) from None
    learned = [p == gold for p, (gold, _) in zip(picks, data)]
    passed = sum(any(v.answer == gold for v in votes) for gold, votes in data)
    rows = {"learned (cross-validated)": learned}
    for name in POLICIES.names():
        if POLICIES.get(name).needs_selector or skip_reason(name, base, has_entropy):
            continue
        cfg = policy_config(base, name)
        rows[name] = [bool(votes) and selection.chosen([(v, 0) for v in votes], cfg) == gold for gold, votes in data]
    comparisons = {name: selection.paired(learned, right, draws, seed) for name, right in rows.items()
                   if not name.startswith("learned")}
    report = {"problems": len(data), "pass": passed, "folds": folds, "seed": seed, "l2": l2, "features": names,
              "left_out": left_out, "correct": {k: sum(v) for k, v in rows.items()}, "against": comparisons,
              "coefficients": dict(zip(sel.features, [round(c, 4) for c in sel.coef]))}
    sel = dataclasses.replace(sel, fitted_on={**sel.fitted_on, "cv_correct": sum(learned), "left_out": left_out})
    return sel, report


def render(report: dict[str, Any]) -> str:
    lines = [f"# Selector fit: {report['problems']} problems, {report['folds']}-fold cross-validation grouped by "
             f"problem (seed {report['seed']}, L2 {report['l2']})", "",
             f"Right answer among the samples (pass@k, an oracle's score): {report['pass']}/{report['problems']}.", "",
             "| policy | correct | learned - it | 95% interval | only learned / only it | sign test p |",
             "|---|---|---|---|---|---|"]
    for name, c in report["correct"].items():
        p = report["against"].get(name)
        tail = (f"{p['difference']:+d} | [{p['ci'][0]:+d}, {p['ci'][1]:+d}] | {p['a_only']} / {p['b_only']} "
                f"| {p['sign_p']:.3f}") if p else " | | |"
        lines.append(f"| {name} | {c}/{report['problems']} | {tail} |")
    lines += ["", "Features: " + ", ".join(f"{n} ({report['coefficients'][n]:+.3f})" for n in report["features"])]
    lines += [f"Left out: {n}: {why}" for n, why in report["left_out"].items()]
    return "\n".join(lines) + "\n"


def write(sel: selector.Selector, report: dict[str, Any], out: Path) -> None:
    from .io import atomic_write

    selector.save(sel, out)
    atomic_write(out.with_suffix(".report.json"), json.dumps(report, indent=2))
    atomic_write(out.with_suffix(".report.md"), render(report))
