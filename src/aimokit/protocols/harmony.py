"""gpt-oss's harmony format: system and developer messages, channels, and `to=python` tool calls.

The conversation, as openai-harmony renders it (`harmony_render`: the reference renderer where it loads):

    <|start|>system<|message|>...Reasoning: high ... # Tools ## python ...<|end|>
    <|start|>developer<|message|># Instructions ...<|end|>
    <|start|>user<|message|>PROBLEM<|end|><|start|>assistant

The model thinks in the `analysis` channel, calls the python tool with a message addressed `to=python`
that ends in `<|call|>`, and is answered on the call's own channel by a message from `python`; its answer
is the `final` channel's message, ending in `<|return|>`. By default the answer is read from the final
channel only (an analysis that boxes a guess does not vote); `solver.answer_region = "anywhere"` reads
every channel the model wrote, as AIMO-3's winners did. Output is read with `harmony_read`, which never
raises on malformed or truncated text and counts what it recovered (`self.recovered`). Requests ask the
engine to keep special tokens in the output (`skip_special_tokens` off): that is how channels are read.
"""

from __future__ import annotations

from typing import Any

from ..prompts import user_message
from ..registry import PROTOCOLS
from .base import Segment, ToolProtocol, boxed_after, closed_boxed, no_output
from .harmony_read import CALL, CHANNEL, END, MESSAGE, RETURN, SPECIAL, START, read
from .harmony_render import renderer

__all__ = ["Harmony", "SPECIAL"]

INSTRUCTIONS = "Use the python tool to check your work. Put the final answer in \\boxed{}."


@PROTOCOLS.register()
class Harmony(ToolProtocol):
    name = "harmony"
    keeps_special_tokens = True
    default_prompt = "tool"
    answer_segments = frozenset({"final"})

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.recovered = 0  # samples whose text was malformed and was read anyway (the solver logs the count)

    @property
    def renderer(self):
        return renderer(self.cfg.harmony_renderer)

    def prompt(self, engine: Any, problem: str, cfg, comp) -> str:
        return self.renderer.prompt(cfg.reasoning_effort, cfg.system_prompt or INSTRUCTIONS,
                                    user_message(problem, cfg, comp, self.default_prompt))

    def stop(self, cfg) -> tuple[str, ...]:
        return (CALL, RETURN)

    def _last(self, text: str):
        """The text's last message (cheap: read from its last <|start|>)."""
        at = text.rfind(START)
        msgs = read(text[at:] if at > 0 else text)
        return msgs[-1] if msgs else None

    def pending_call(self, tail: str) -> str | None:
        """The code of a `to=python` message the tail ends with (its `<|call|>` may be cut by the engine, or
        written as `<|return|>`)."""
        last = self._last(tail)
        if last is None or not last.is_python_call or last.end == END or last.body_at < 0:
            return None
        return last.body if last.body.strip() else None

    def tool_result(self, text: str, output: str) -> str:
        last = self._last(text)
        channel = (last.channel if last is not None and last.is_python_call else "") or "analysis"
        sep = "" if text.endswith((CALL, RETURN)) else CALL  # the engine may leave the stop token out
        return sep + self.renderer.tool_reply(channel, no_output(output))

    def segments(self, text: str, prompt: str) -> list[Segment]:
        msgs = read(text)
        if any(m.recovered for m in msgs):
            self.recovered += 1
        return [(m.channel or "analysis", m.body) for m in msgs
                if m.role == "assistant" and not m.recipient and m.body_at >= 0]

    def written_solution(self, prompt: str, solution: str, answer: str, *, thinks: bool = True) -> str:
        """The reasoning in the analysis channel, the boxed answer in the final one (the prompt ends at the
        assistant's start), as gptoss_training.jinja renders a turn with `thinking` and `content`."""
        return (f"{CHANNEL}analysis{MESSAGE}{solution.strip()}{END}{START}assistant{CHANNEL}final{MESSAGE}"
                f"{boxed_after('', answer).lstrip()}{RETURN}")

    def answer_complete(self, text: str, prompt: str) -> bool:
        """A closed box in the last message, where it is in the region (by default the final channel: a boxed
        guess in the analysis channel does not stop the sample)."""
        last = self._last(text)
        if last is None or last.role != "assistant" or last.recipient or last.body_at < 0:
            return False
        return self.reads(last.channel or "analysis") and closed_boxed(last.body)
