"""Code in ```python fences, results in ```output fences, the answer in \\boxed{}.

The Numina convention DeepSeekMath-RL, NuminaMath and Qwen2.5-Math were
trained on, and the kit's behaviour before protocols existed (unchanged).
"""

from __future__ import annotations

import re
from typing import Any

from ..config import CompetitionConfig, SamplingConfig
from ..prompts import OUTPUT_OPEN, messages
from .base import boxed_after, closed_boxed, no_output

CODE = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)


class Fenced:
    keeps_special_tokens = False
    name = "fenced"

    def prompt(self, engine: Any, problem: str, cfg: SamplingConfig, comp: CompetitionConfig) -> str:
        return engine.chat_prompt(messages(problem, cfg, comp))

    def stop(self, cfg: SamplingConfig) -> tuple[str, ...]:
        return tuple(cfg.stop)

    def pending_call(self, tail: str) -> str | None:
        blocks = CODE.findall(tail)
        if not blocks:
            return None
        last = tail.rfind("```python")
        if "\\boxed" in tail[last:]:
            return None  # answered after the code: nothing left to learn from it
        code = blocks[-1]
        return code if code.strip() else None

    def tool_result(self, text: str, output: str) -> str:
        body = no_output(output)
        if text.endswith(OUTPUT_OPEN):
            return f"\n{body}\n```\n"
        sep = "" if text.endswith("\n") else "\n"
        return f"{sep}{OUTPUT_OPEN}\n{body}\n```\n"

    def answer_text(self, text: str) -> str:
        return text

    def written_solution(self, prompt: str, solution: str, answer: str) -> str:
        return boxed_after(solution, answer)

    def answer_complete(self, text: str) -> bool:
        """A closed box outside any code fence (an odd number of fences: a block is still open)."""
        if text.count("```") % 2:
            return False
        return closed_boxed(text[text.rfind("```") + 3:] if "```" in text else text)
