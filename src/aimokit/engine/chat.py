"""Messages -> prompt text with the model's own chat template (plain turns for a base model without one)."""

from __future__ import annotations

from typing import Any


def apply_chat_template(tokenizer: Any, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
    if getattr(tokenizer, "chat_template", None):
        kw = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kw)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant: "


def template_thinks(tokenizer: Any) -> bool:
    """Whether the model's chat template writes a reasoning block: it renders an assistant turn's
    `reasoning_content` (Qwen3), or opens `<think>` in the generation prompt (DeepSeek-R1-distill). Qwen2.5's
    does neither, and its SFT targets carry no block."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    user = [{"role": "user", "content": "u"}]
    turn = user + [{"role": "assistant", "content": "A", "reasoning_content": "R-4d1f"}]
    rendered = tokenizer.apply_chat_template(turn, tokenize=False)
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    return "R-4d1f" in rendered or prompt.rstrip().endswith("<think>")


class TokenizerRenderer:
    """The one engine call `ToolProtocol.prompt` makes (`chat_prompt`), on a tokenizer alone: training renders
    prompts exactly as the kernel's engine does, without an engine."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def chat_prompt(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
        return apply_chat_template(self.tokenizer, messages, tools)
