"""No tools: the model reasons in text and boxes its answer (R1-distill style)."""

from __future__ import annotations

from typing import Any

from ..config import CompetitionConfig, SamplingConfig
from ..prompts import messages
from .base import after_thinking, boxed_after, closed_boxed


class ChainOfThought:
    keeps_special_tokens = False
    name = "cot"

    def prompt(self, engine: Any, problem: str, cfg: SamplingConfig, comp: CompetitionConfig) -> str:
        return engine.chat_prompt(messages(problem, cfg, comp))

    def stop(self, cfg: SamplingConfig) -> tuple[str, ...]:
        return ()

    def pending_call(self, tail: str) -> str | None:
        return None

    def tool_result(self, text: str, output: str) -> str:
        raise AssertionError("the cot protocol makes no tool calls")

    def answer_text(self, text: str) -> str:
        return text

    def written_solution(self, prompt: str, solution: str, answer: str) -> str:
        return boxed_after(solution, answer)

    def answer_complete(self, text: str) -> bool:
        return closed_boxed(after_thinking(text))
