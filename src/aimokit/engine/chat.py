"""Messages -> prompt text with the model's own chat template (plain turns for a base model without one)."""

from __future__ import annotations

from typing import Any


def apply_chat_template(tokenizer: Any, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
    if getattr(tokenizer, "chat_template", None):
        kw = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kw)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant: "


class TokenizerRenderer:
    """The one engine call `ToolProtocol.prompt` makes (`chat_prompt`), on a tokenizer alone: training renders
    prompts exactly as the kernel's engine does, without an engine."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def chat_prompt(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
        return apply_chat_template(self.tokenizer, messages, tools)
