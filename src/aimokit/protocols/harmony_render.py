"""Rendering harmony (gpt-oss's conversation format): through `openai_harmony` where it loads, else as text.

Why two renderers: `openai_harmony` is the reference (it is what gpt-oss's own tooling and the AIMO-3 winners
rendered with), so it renders whenever it loads. The official `openai-harmony` wheel reads the o200k_base
vocabulary from `TIKTOKEN_ENCODINGS_BASE` (or downloads it, which a Kaggle kernel cannot); the kit's wheels
dataset ships that file and the notebook points the variable at it (`aimokit.vocab`). The text renderer
writes the same tokens spelled out, which any gpt-oss tokenizer maps to the same ids; it runs where the
reference cannot load (`solver.harmony_renderer = "auto"` falls back to it and logs so; "text" asks for it).
A CI test renders a corpus of conversations both ways and requires identical token ids.
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol

from .harmony_read import CHANNEL, END, MESSAGE, START

log = logging.getLogger(__name__)

MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
KNOWLEDGE_CUTOFF = "2024-06"
# openai-harmony's ToolNamespaceConfig.python() and the gpt-oss chat template, word for word: the text the
# model was trained on (the sandbox's own limits still hold; the model is told when one is hit).
PYTHON_TOOL_DESCRIPTION = (
    "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. "
    "This tool should be used for internal reasoning, but not for code that is intended to be visible to the "
    "user (e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a stateful Jupyter "
    "notebook environment. python will respond with the output of the execution or time out after 120.0 "
    "seconds. The drive at '/mnt/data' can be used to save and persist user files. Internet access for this "
    "session is UNKNOWN. Depends on the cluster.")
CHANNELS_LINE = "# Valid channels: analysis, commentary, final. Channel must be included for every message."
RENDERERS = ("auto", "openai_harmony", "text")


class Renderer(Protocol):
    name: str

    def prompt(self, effort: str, instructions: str, user: str) -> str:
        """System (reasoning effort, the python tool), developer (instructions) and user messages, then the
        assistant's `<|start|>assistant` that generation continues."""

    def tool_reply(self, channel: str, output: str) -> str:
        """The python tool's answer to a call made on `channel`, then the next `<|start|>assistant`."""


class TextRenderer:
    name = "text"

    def prompt(self, effort: str, instructions: str, user: str) -> str:
        system = (f"{MODEL_IDENTITY}\nKnowledge cutoff: {KNOWLEDGE_CUTOFF}\n\nReasoning: {effort}\n\n# Tools\n\n"
                  f"## python\n\n{PYTHON_TOOL_DESCRIPTION}\n\n{CHANNELS_LINE}")
        developer = f"# Instructions\n\n{instructions}" if instructions else ""
        return (f"{START}system{MESSAGE}{system}{END}{START}developer{MESSAGE}{developer}{END}"
                f"{START}user{MESSAGE}{user}{END}{START}assistant")

    def tool_reply(self, channel: str, output: str) -> str:
        # openai-harmony writes the recipient after the channel on commentary, before it elsewhere
        if channel == "commentary":
            header = f"python{CHANNEL}commentary to=assistant"
        else:
            header = f"python to=assistant{CHANNEL + channel if channel else ''}"
        return f"{START}{header}{MESSAGE}{output}{END}{START}assistant"


class ReferenceRenderer:
    """openai-harmony's own renderer; its token ids decoded to text for the engine's tokenizer."""

    name = "openai_harmony"

    def __init__(self) -> None:
        import openai_harmony as h

        self.h = h
        self.enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)

    def prompt(self, effort: str, instructions: str, user: str) -> str:
        h = self.h
        system = (h.SystemContent.new().with_reasoning_effort(h.ReasoningEffort(effort.capitalize()))
                  .with_tools(h.ToolNamespaceConfig.python()))
        developer = h.DeveloperContent.new()
        if instructions:
            developer = developer.with_instructions(instructions)
        conv = h.Conversation.from_messages([h.Message.from_role_and_content(h.Role.SYSTEM, system),
                                             h.Message.from_role_and_content(h.Role.DEVELOPER, developer),
                                             h.Message.from_role_and_content(h.Role.USER, user)])
        return self.enc.decode(self.enc.render_conversation_for_completion(conv, h.Role.ASSISTANT))

    def tool_reply(self, channel: str, output: str) -> str:
        h = self.h
        msg = h.Message.from_author_and_content(h.Author.new(h.Role.TOOL, "python"), output).with_recipient("assistant")
        if channel:
            msg = msg.with_channel(channel)
        return self.enc.decode(self.enc.render(msg)) + f"{START}assistant"

    def encode(self, text: str) -> list[int]:
        """o200k ids of harmony text, special tokens as tokens (the reference test's common ground)."""
        return self.enc.encode(text, allowed_special="all")


@functools.lru_cache(maxsize=None)
def renderer(choice: str = "auto") -> Renderer:
    """The renderer `solver.harmony_renderer` asks for; "auto": the reference where it loads, else text, logged."""
    if choice not in RENDERERS:
        raise ValueError(f"harmony renderer {choice!r}: use one of {', '.join(RENDERERS)}")
    if choice == "text":
        log.info("harmony renders as text (solver.harmony_renderer = 'text')")
        return TextRenderer()
    try:
        ref = ReferenceRenderer()
    except Exception as e:  # ImportError, or the vocabulary not found offline
        if choice == "openai_harmony":
            from ..errors import AimokitError

            raise AimokitError(
                f"solver.harmony_renderer = 'openai_harmony' but it cannot load: {e!r}. Install openai-harmony "
                "(a vLLM dependency) and set TIKTOKEN_ENCODINGS_BASE to a folder holding o200k_base.tiktoken "
                "(the kit's wheels dataset ships it), or set solver.harmony_renderer = 'text'") from e
        log.warning("harmony renders as text: openai_harmony did not load (%r); the text renderer writes the "
                    "same tokens (tested), set TIKTOKEN_ENCODINGS_BASE for the reference", e)
        return TextRenderer()
    log.info("harmony renders through openai_harmony")
    return ref
