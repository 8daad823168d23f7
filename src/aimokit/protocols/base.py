"""What a tool-call protocol is: how a conversation is rendered to the engine and how its output is read.

The solver loop, the budget and the votes never look inside the text; they ask
the sample's protocol five things: the prompt, the strings that end a round,
the code of a tool call the round ended with (if any), the text that hands
the tool's result back, where the answer is read, and when it is complete. A new protocol is one module in this package and one
line in `PROTOCOLS`.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol as _Protocol

from ..config import CompetitionConfig, SamplingConfig

PROTOCOLS = {
    "fenced": "aimokit.protocols.fenced:Fenced",  # ```python / ```output (DeepSeekMath, Numina, Qwen2.5-Math)
    "cot": "aimokit.protocols.cot:ChainOfThought",  # no tools (R1-distill style)
    "hermes": "aimokit.protocols.hermes:Hermes",  # <tool_call> / <tool_response> (Qwen3, Qwen2.5)
    "harmony": "aimokit.protocols.harmony:Harmony",  # channels and to=python calls (gpt-oss)
}


class ToolProtocol(_Protocol):
    name: str
    keeps_special_tokens: bool  # the engine must leave special tokens in the text (harmony reads its channels so)

    def prompt(self, engine: Any, problem: str, cfg: SamplingConfig, comp: CompetitionConfig) -> str:
        """The text the first round continues (the model's chat template, with whatever the protocol adds)."""

    def stop(self, cfg: SamplingConfig) -> tuple[str, ...]:
        """Strings that end a round so a tool call can run (kept in the output, as vLLM keeps them)."""

    def pending_call(self, tail: str) -> str | None:
        """The code of the tool call `tail` (the text since the last tool result) ends with, or None."""

    def tool_result(self, text: str, output: str) -> str:
        """The text appended after a tool call so generation continues with the result in view."""

    def answer_text(self, text: str) -> str:
        """The part of a sample's text its answer is read from (harmony: the final channel)."""

    def answer_complete(self, text: str) -> bool:
        """True once a round's text holds a finished answer (a closed \\boxed{} where the answer is read):
        the engine may stop the sample there (`solver.stop_at_answer`). Called as text streams in: cheap."""

    def written_solution(self, prompt: str, solution: str, answer: str) -> str:
        """A reference solution as this model would have written it after `prompt`, its answer boxed where
        `answer_text` reads it (SFT on reference solutions trains the format the kernel parses)."""


def get_protocol(name: str) -> ToolProtocol:
    try:
        module, cls = PROTOCOLS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None
    return getattr(importlib.import_module(module), cls)()


def no_output(output: str) -> str:
    return output if output.strip() else "(no output; use print() to see values)"


BOXED_SPAN = 256  # an integer answer's \boxed{...} is short: a longer one is not closed yet, as far as stopping goes


def closed_boxed(segment: str) -> bool:
    """A `\\boxed{...}` whose braces close, within BOXED_SPAN characters of its start.

    Bounded whatever the text: it looks only at the last `\\boxed{` (found from the end,
    in C) and at most BOXED_SPAN characters after it, so streaming checks stay cheap
    on a model that opens a box and never closes it.
    """
    from ..answers import closing_brace

    at = segment.rfind("\\boxed{")
    return at >= 0 and closing_brace(segment, at + 6, BOXED_SPAN) is not None


def after_thinking(text: str) -> str:
    """The text after the reasoning block (`</think>`); nothing while a `<think>` is still open."""
    end = text.rfind("</think>")
    if end >= 0:
        return text[end + len("</think>"):]
    return "" if "<think>" in text else text


def boxed_after(solution: str, answer: str) -> str:
    """The plain-text ending every protocol's answer segment uses."""
    return f"{solution.rstrip()}\n\nThe answer is \\boxed{{{answer}}}."
