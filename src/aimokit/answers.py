"""From generated text to one integer answer per problem.

Extraction prefers the model's `\\boxed{}`; failing that, the last integer the
code printed. Boxed LaTeX is read by math-verify (so `\\frac{84}{2}` or
`1{,}000` count), grading uses math-verify too, and the competition's
modulo and range are applied in one place.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass

import sympy
from math_verify import parse, verify

from .config import CompetitionConfig, SolverConfig

_INT = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.0+)?(?![\w.]*\d)")


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    return 5 if threading.current_thread() is threading.main_thread() else None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def to_integer(expr: str) -> int | None:
    """An expression's value if it is an integer (via math-verify), else None."""
    s = expr.strip().strip("$").strip()
    if re.fullmatch(r"-?\d+", s):  # the common case, without a sympy round trip
        return int(s)
    try:
        parsed = parse(f"${s}$", parsing_timeout=_timeout())
    except Exception:
        return None
    for value in parsed:
        if isinstance(value, sympy.Basic):
            try:
                if value.is_number and value.is_real:
                    v = sympy.nsimplify(value) if value.is_Float else value
                    if v.is_integer:
                        return int(v)
                    f = float(value)
                    if f.is_integer() and abs(f) < 1e15:
                        return int(f)
            except (TypeError, ValueError):
                continue
    return None


def last_printed_integer(outputs: list[str]) -> int | None:
    """The last integer in the most recent code output that has one."""
    for out in reversed(outputs):
        nums = _INT.findall(out)
        if nums:
            s = nums[-1].replace(",", "")
            try:
                return int(float(s)) if "." in s else int(s)
            except ValueError:
                continue
    return None


def normalize(value: int | None, comp: CompetitionConfig) -> int | None:
    """Apply the modulo, then the range: None means 'no valid answer'."""
    if value is None:
        return None
    if comp.modulo:
        value %= comp.modulo
    if not comp.answer_min <= value <= comp.answer_max:
        return None
    return value


@dataclass
class Extracted:
    answer: int | None
    boxed: bool


def extract_answer(text: str, code_outputs: list[str], comp: CompetitionConfig) -> Extracted:
    boxed = last_boxed(text)
    if boxed is not None:
        value = normalize(to_integer(boxed), comp)
        if value is not None:
            return Extracted(value, True)
    return Extracted(normalize(last_printed_integer(code_outputs), comp), False)


def is_correct(predicted: int | None, gold: int | None) -> bool | None:
    """math-verify equivalence; None when there is no gold answer."""
    if gold is None:
        return None
    if predicted is None:
        return False
    return bool(verify(parse(f"${gold}$", parsing_timeout=_timeout()),
                       parse(f"${predicted}$", parsing_timeout=_timeout()),
                       timeout_seconds=_timeout()))


@dataclass
class Vote:
    answer: int
    weight: float


def vote_weight(boxed: bool, code_runs: int, code_errors: int, cfg: SolverConfig) -> float:
    base = cfg.weight_boxed if boxed else cfg.weight_unboxed
    if code_runs == 0:
        return base * cfg.weight_no_code
    return base * (cfg.weight_code_error if code_errors else cfg.weight_code_clean)


def tally(votes: list[Vote]) -> dict[int, float]:
    totals: dict[int, float] = defaultdict(float)
    for v in votes:
        totals[v.answer] += v.weight
    return dict(totals)


def winner(votes: list[Vote], fallback: int) -> int:
    """Heaviest answer; ties go to the answer that reached the top first."""
    if not votes:
        return fallback
    totals = tally(votes)
    best = max(totals.values())
    for v in votes:  # earliest among the tied
        if totals[v.answer] == best:
            return v.answer
    return fallback


def decided(votes: list[Vote], pending: int, cfg: SolverConfig) -> bool:
    """True when more samples cannot (or are very unlikely to) change the winner.

    Counts are in votes, not weights, for the agreement rules, and in weight
    for the 'cannot be overtaken' rule (each pending sample adds at most the
    largest weight any sample can carry).
    """
    if not votes:
        return False
    counts: dict[int, int] = defaultdict(int)
    for v in votes:
        counts[v.answer] += 1
    top = max(counts.values())
    n = len(votes)
    if cfg.early_stop_agree and top >= cfg.early_stop_agree:
        return True
    for agree, out_of in cfg.early_stop:
        if top >= agree and n <= out_of:
            return True
    totals = sorted(tally(votes).values(), reverse=True)
    lead = totals[0] - (totals[1] if len(totals) > 1 else 0.0)
    max_w = max(cfg.weight_boxed, cfg.weight_unboxed) * max(
        cfg.weight_code_clean, cfg.weight_code_error, cfg.weight_no_code
    )
    return lead > pending * max_w
