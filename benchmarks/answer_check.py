"""The streaming answer check's cost per round, with and without `AnswerCheck.may_close`, side by side in one run.

A request that stops at its answer (`solver.stop_at_answer`) is checked at each "}" it streams
(`engine/vllm_outputs.py`, `Streamed.answer_end`). Real math reasoning is dense in LaTeX braces, so a long round meets
thousands of them; each check copies the text so far and reads its region, so the cost grows with the square of
the round. `may_close` skips the braces no `\\boxed{` opens close enough before. This streams one synthetic round
(LaTeX-heavy, no answer, so every brace is checked to the end) through each registered protocol's check, in
deltas of one token (about 4 characters) and of `engine.vllm.stream_interval` tokens, and prints the seconds.
CPU only: this is the front end's own Python, which runs between the engine's steps.

    python benchmarks/answer_check.py [--chars 60000] [--out DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import versions, write  # noqa: E402

from aimokit.engine.vllm_outputs import Streamed  # noqa: E402
from aimokit.registry import PROTOCOLS  # noqa: E402
from aimokit.protocols import get_protocol  # noqa: E402

PIECES = ["Let ", "$x", "^{2}", "+", "\\frac{a}{b}", "$ ", "so ", "we ", "get ", "\\sqrt{", "n}", " and ",
          "\\binom{n}{k}", ". ", "Then ", "f(", "x)", " = ", "3", "\n"]
LEAD = {"harmony": "<|channel|>analysis<|message|>"}  # the text a round of each protocol begins with


class _Unskipped:
    """The same check without `may_close`: every brace pays the full check, as before 2026-12-03."""

    def __init__(self, check):
        self.check = check

    def __call__(self, text: str) -> bool:
        return self.check(text)


def round_text(chars: int, seed: int = 0) -> str:
    rng, out, n = random.Random(seed), [], 0
    while n < chars:
        piece = rng.choice(PIECES)
        out.append(piece)
        n += len(piece)
    return "".join(out)


def stream(check, text: str, delta_chars: int) -> tuple[float, int]:
    """Seconds to check `text` streamed in deltas of `delta_chars`, and the braces met."""
    s, braces = Streamed(check), 0
    t = time.perf_counter()
    for i in range(0, len(text), delta_chars):
        start = len(s.text)
        delta = text[i:i + delta_chars]
        s.text += delta
        if "}" in delta:
            braces += delta.count("}")
            if s.answer_end(start) is not None:
                raise AssertionError("the synthetic round holds no answer")
    return time.perf_counter() - t, braces


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chars", type=int, default=60_000, help="the round's length (about 15k tokens)")
    ap.add_argument("--interval", type=int, default=16, help="tokens per delta (engine.vllm.stream_interval)")
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    body = round_text(a.chars)
    rows = []
    for name in PROTOCOLS.names():
        p = get_protocol(name)
        text = LEAD.get(name, "") + body
        for tokens in (1, a.interval):
            skip_s, braces = stream(p.answer_check("", ""), text, 4 * tokens)
            full_s, _ = stream(_Unskipped(p.answer_check("", "")), text, 4 * tokens)
            rows.append({"protocol": name, "delta_tokens": tokens, "braces": braces, "chars": len(text),
                         "checked_every_brace_s": round(full_s, 3), "with_may_close_s": round(skip_s, 3),
                         "ratio": round(full_s / skip_s, 1) if skip_s else None})
            print(f"{name:8s} deltas of {tokens:2d} tokens: {braces} braces, every brace checked {full_s:.3f} s, "
                  f"with may_close {skip_s:.3f} s", flush=True)
    write(Path(a.out), "answer_check", {"rows": rows, **versions()})


if __name__ == "__main__":
    main()
