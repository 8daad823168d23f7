"""No tools: the model reasons in text and boxes its answer (R1-distill style).

The answer region is the text after the reasoning block: DeepSeek-R1-distill's template opens `<think>`
in the prompt, so a completion cut before `</think>` has no answer, however many boxes its reasoning holds.
"""

from __future__ import annotations

from typing import Any

from ..prompts import messages
from ..registry import PROTOCOLS
from .base import Segment, ToolProtocol, closed_boxed, in_thinking, think_segments


@PROTOCOLS.register()
class ChainOfThought(ToolProtocol):
    name = "cot"
    default_prompt = "cot"
    fits_prompts = ()

    def prompt(self, engine: Any, problem: str, cfg, comp) -> str:
        return engine.chat_prompt(messages(problem, cfg, comp, self.default_prompt))

    def segments(self, text: str, prompt: str) -> list[Segment]:
        return think_segments(text, prompt)

    def answer_complete(self, text: str, prompt: str) -> bool:
        if not self.anywhere and in_thinking(text, prompt):
            return False
        close = text.rfind("</think>")
        return closed_boxed(text if self.anywhere or close < 0 else text[close:])
