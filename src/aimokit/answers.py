"""From generated text to one integer per sample (how samples' answers are voted on: `votes`).

Extraction prefers the model's `\\boxed{}`; failing that, the last integer the
code printed. Boxed LaTeX is read by math-verify (so `\\frac{84}{2}` or
`1{,}000` count), grading uses math-verify too, and the competition's
modulo and range are applied in one place.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from . import mathparse
from .config import CompetitionConfig

log = logging.getLogger(__name__)

_INT = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.0+)?(?![\w.]*\d)")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    j = closing_brace(text, i)
    return text[i + 1 : j] if j is not None else None


def closing_brace(text: str, i: int, span: int | None = None) -> int | None:
    """The index of the brace that closes the one at `i`, looking at most `span` characters on; None if none."""
    depth = 0
    end = len(text) if span is None else min(len(text), i + span)
    for j in range(i, end):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


def to_integer(expr: str, timeout_s: float | None = None) -> int | None:
    """An expression's value if it is an integer, else None; bounded in time (see mathparse)."""
    return mathparse.to_integer(expr, timeout_s=timeout_s)


# Code output is capped by the sandbox, but this also reads text from elsewhere:
# only the tail is scanned, which keeps the regex's work bounded.
_PRINTED_TAIL = 2000


def last_printed_integer(outputs: list[str]) -> int | None:
    """The last integer in the most recent code output that has one."""
    for out in reversed(outputs):
        nums = _INT.findall(out[-_PRINTED_TAIL:])
        if not nums:
            continue
        digits = nums[-1].replace(",", "").split(".")[0]  # the regex admits only ".000" fractions
        if len(digits.lstrip("-")) <= mathparse.MAX_DIGITS:
            return int(digits)
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


def extract_answer(text: str, code_outputs: list[str], comp: CompetitionConfig,
                   deadline: float | None = None) -> Extracted:
    """The sample's answer; never raises and returns within about a second, whatever the text.

    Near `deadline` (monotonic) sympy gets only the time left, and past it none: many cut
    samples read at the deadline must not add up to minutes past it.
    """
    timeout = None if deadline is None else min(mathparse.TIMEOUT_S, deadline - time.monotonic())
    try:
        return _extract(text, code_outputs, comp, timeout)
    except Exception:  # untrusted text must not take the solve loop down
        log.exception("answer extraction failed; the sample has no answer")
        return Extracted(None, False)


def _extract(text: str, code_outputs: list[str], comp: CompetitionConfig, timeout_s: float | None) -> Extracted:
    boxed = last_boxed(text)
    if boxed is not None:
        value = normalize(to_integer(boxed, timeout_s), comp)
        if value is not None:
            return Extracted(value, True)
    return Extracted(normalize(last_printed_integer(code_outputs), comp), False)


def is_correct(predicted: int | None, gold: int | str | None) -> bool | None:
    """math-verify equivalence (plain integers compare directly), bounded in time; None when there is no gold."""
    if gold is None:
        return None
    if predicted is None:
        return False
    if isinstance(gold, int) and isinstance(predicted, int):
        return predicted == gold
    return mathparse.equivalent(str(gold), str(predicted))
