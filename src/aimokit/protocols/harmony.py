"""gpt-oss's harmony format: system and developer messages, channels, and `to=python` tool calls.

The conversation, as gpt-oss was trained on it:

    <|start|>system<|message|>...Reasoning: high ... # Tools ## python ...<|end|>
    <|start|>developer<|message|># Instructions ...<|end|>
    <|start|>user<|message|>PROBLEM<|end|><|start|>assistant

The model thinks in the `analysis` channel, calls the python tool with a
message addressed `to=python` that ends in `<|call|>`, and is answered by a
`<|start|>python to=assistant<|channel|>analysis<|message|>OUTPUT<|end|>`
message; its answer is the `final` channel's message, ending in `<|return|>`.
The answer is read from the final channel only (an analysis that boxes a
guess does not vote).

Which renderer runs: this module writes the format as text with the special
tokens spelled out, and the engine's own tokenizer turns them into gpt-oss's
special-token ids (every gpt-oss tokenizer carries them). The `openai-harmony`
package renders the same tokens but needs the `o200k_base` vocabulary file at
run time (`TIKTOKEN_ENCODINGS_BASE`), which no package here ships and a Kaggle
notebook cannot download; the text path needs nothing but the model. Where a
dataset attached to the kernel carries `o200k_base.tiktoken`, the notebook's
setup cell points `TIKTOKEN_ENCODINGS_BASE` at it, for whatever in the image
reads the vocabulary through openai-harmony. Requests
ask the engine to keep special tokens in the output (`skip_special_tokens`
off), which is how the channels and the `to=python` header are read.
"""

from __future__ import annotations

from typing import Any

from ..config import CompetitionConfig, SamplingConfig
from ..prompts import user_message
from .base import boxed_after, closed_boxed, no_output

START, END, MESSAGE, CHANNEL, CALL, RETURN = "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>"
SPECIAL = (START, END, MESSAGE, CHANNEL, CALL, RETURN, "<|constrain|>")

PYTHON_TOOL = (
    "## python\n\n"
    "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. "
    "This tool should be used for internal reasoning, but not for code that is intended to be visible to the "
    "user (e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a stateful Jupyter "
    "notebook environment. python will respond with the output of the execution or time out after 120.0 "
    "seconds. Internet access for this session is disabled.")  # what gpt-oss was trained on; the sandbox's limit holds


class Harmony:
    name = "harmony"
    keeps_special_tokens = True

    def prompt(self, engine: Any, problem: str, cfg: SamplingConfig, comp: CompetitionConfig) -> str:
        system = ("You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\n"
                  f"Reasoning: {cfg.reasoning_effort}\n\n# Tools\n\n"
                  + PYTHON_TOOL
                  + "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.")
        developer = "# Instructions\n\n" + (cfg.system_prompt or
                                            "Use the python tool to check your work. Put the final answer in \\boxed{}.")
        return (f"{START}system{MESSAGE}{system}{END}{START}developer{MESSAGE}{developer}{END}"
                f"{START}user{MESSAGE}{user_message(problem, cfg, comp)}{END}{START}assistant")

    def stop(self, cfg: SamplingConfig) -> tuple[str, ...]:
        return (CALL, RETURN)

    def pending_call(self, tail: str) -> str | None:
        """The code of a `to=python` message the tail ends with (its `<|call|>` may be cut by the engine)."""
        body_at = tail.rfind(MESSAGE)
        if body_at < 0:
            return None
        body = tail[body_at + len(MESSAGE):]
        if END in body or RETURN in body:
            return None  # that message is finished text, not a call
        cut = max(tail.rfind(START, 0, body_at), tail.rfind(END, 0, body_at))
        header = tail[max(cut, 0):body_at]  # this message's header: channel and recipient
        if "to=python" not in header and "to=functions.python" not in header:
            return None
        code = body.split(CALL, 1)[0]
        return code if code.strip() else None

    def tool_result(self, text: str, output: str) -> str:
        sep = "" if text.endswith(CALL) else CALL  # the engine may leave the stop token out of the text
        return f"{sep}{START}python to=assistant{CHANNEL}analysis{MESSAGE}{no_output(output)}{END}{START}assistant"

    def answer_text(self, text: str) -> str:
        """The final channel's message, or nothing when the model never reached it."""
        at = text.rfind(CHANNEL + "final")
        if at < 0:
            return ""
        body = text[at:].split(MESSAGE, 1)
        return body[1].split(RETURN, 1)[0].split(END, 1)[0] if len(body) > 1 else ""

    def written_solution(self, prompt: str, solution: str, answer: str) -> str:
        """The reasoning in the analysis channel, the boxed answer in the final one (the prompt ends at the
        assistant's start)."""
        return (f"{CHANNEL}analysis{MESSAGE}{solution.strip()}{END}{START}assistant{CHANNEL}final{MESSAGE}"
                f"{boxed_after('', answer).lstrip()}{RETURN}")

    def answer_complete(self, text: str) -> bool:
        """A closed box in the final channel (a boxed guess in the analysis channel does not stop the sample)."""
        return closed_boxed(self.answer_text(text))

