"""Hermes-style tool calls in ChatML, as Qwen3 and Qwen2.5 speak them.

The model calls `<tool_call>{"name": "python", "arguments": {"code": ...}}</tool_call>`
and ends its turn; the result comes back as a user turn holding
`<tool_response>...</tool_response>`, and a new assistant turn continues. The
tool is declared through the model's own chat template (`tools=`), and in the
template's words where a template ignores tools. `<think>` is left as the
model writes it: Qwen3's template keeps the reasoning of the turn in progress.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..prompts import messages
from ..registry import PROTOCOLS
from .base import Segment, ToolProtocol, closed_boxed, in_thinking, no_output, think_segments

TOOL = {"type": "function", "function": {
    "name": "python",
    "description": "Run Python code (sympy and numpy available) in a stateful session; returns what it prints.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "the code"}},
                   "required": ["code"]}}}
CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
# what the model did not write as prose: its calls, and the tool's responses (in the user turn the kit appends)
TOOLISH = re.compile(r"<tool_call>.*?(?:</tool_call>|\Z)"
                     r"|(?:<\|im_end\|>\s*)?<\|im_start\|>user\s*<tool_response>.*?(?:<\|im_start\|>assistant\n|\Z)"
                     r"|<tool_response>.*?(?:</tool_response>|\Z)", re.DOTALL)
TOOLS_TEXT = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + json.dumps(TOOL) + "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


@PROTOCOLS.register()
class Hermes(ToolProtocol):
    name = "hermes"
    default_prompt = "tool"

    def prompt(self, engine: Any, problem: str, cfg, comp) -> str:
        msgs = messages(problem, cfg, comp, self.default_prompt)
        text = engine.chat_prompt(msgs, tools=[TOOL])
        if "<tools>" not in text:  # a template that does not render tools: say it in the system message
            system = [m for m in msgs if m["role"] == "system"]
            content = (system[0]["content"] + "\n\n" if system else "") + TOOLS_TEXT
            text = engine.chat_prompt([{"role": "system", "content": content}] +
                                      [m for m in msgs if m["role"] != "system"])
        return text

    def stop(self, cfg) -> tuple[str, ...]:
        return ("</tool_call>",)

    def pending_call(self, tail: str) -> str | None:
        calls = CALL.findall(tail)
        if not calls:
            return None
        try:
            call = json.loads(calls[-1])
            args = call.get("arguments", {})
            if isinstance(args, str):  # some models send the arguments JSON-encoded
                args = json.loads(args)
            if call.get("name") != "python":
                return f"raise NameError({'no tool named ' + str(call.get('name'))[:40] + '; the one tool is python'!r})"
            code = args.get("code")
        except (ValueError, AttributeError):
            return "raise SyntaxError('the tool call was not valid JSON with name python and arguments.code')"
        return code if isinstance(code, str) and code.strip() else None

    def tool_result(self, text: str, output: str) -> str:
        return (f"<|im_end|>\n<|im_start|>user\n<tool_response>\n{no_output(output)}\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n")

    def segments(self, text: str, prompt: str) -> list[Segment]:
        return think_segments(TOOLISH.sub("\n", text), prompt)

    def answer_complete(self, text: str, prompt: str) -> bool:
        """A closed box after the reasoning block and after the last tool call (none while a call is open)."""
        if not self.anywhere and in_thinking(text, prompt):
            return False
        call_end = text.rfind("</tool_call>")
        if text.rfind("<tool_call>") > call_end:
            return False
        tail = text[call_end + len("</tool_call>"):] if call_end >= 0 else text
        close = tail.rfind("</think>")
        return closed_boxed(tail if self.anywhere or close < 0 else tail[close:])
