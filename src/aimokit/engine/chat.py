"""Messages -> prompt text with the model's own chat template (plain turns for a base model without one)."""

from __future__ import annotations

from typing import Any


def apply_chat_template(tokenizer: Any, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
    if getattr(tokenizer, "chat_template", None):
        kw = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kw)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant: "
