"""Code in ```python fences, results in ```output fences, the answer in \\boxed{}.

The Numina convention DeepSeekMath-RL, NuminaMath and Qwen2.5-Math were trained on. The answer region is
the prose outside code fences (a box printed by code or inside a block is no answer), after `</think>`
where the model reasons in a block.
"""

from __future__ import annotations

import re
from typing import Any

from ..prompts import OUTPUT_OPEN, messages
from ..registry import PROTOCOLS
from .base import Segment, ToolProtocol, closed_boxed, in_thinking, no_output, think_segments

CODE = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)
FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)  # any fenced block (code, output), or one still open


@PROTOCOLS.register()
class Fenced(ToolProtocol):
    name = "fenced"
    default_prompt = "tir"

    def prompt(self, engine: Any, problem: str, cfg, comp) -> str:
        return engine.chat_prompt(messages(problem, cfg, comp, self.default_prompt))

    def stop(self, cfg) -> tuple[str, ...]:
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

    def segments(self, text: str, prompt: str) -> list[Segment]:
        return think_segments(FENCED.sub("\n", text), prompt)

    def answer_complete(self, text: str, prompt: str) -> bool:
        """A closed box outside any code fence (an odd number of fences: a block is still open)."""
        if text.count("```") % 2 or (not self.anywhere and in_thinking(text, prompt)):
            return False
        return closed_boxed(text[text.rfind("```") + 3:] if "```" in text else text)
