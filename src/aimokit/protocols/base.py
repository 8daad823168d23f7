"""What a tool-call protocol is: how a conversation is rendered to the engine and how its output is read.

The solver loop, the budget and the votes never look inside the text; they ask the sample's protocol:
the prompt (in the protocol's own instructions), the strings that end a round, the code of a tool call the
round ended with (if any), the text that hands the tool's result back, where the answer is read, and when
it is complete. A new protocol is one module in this package that registers itself
(`@PROTOCOLS.register()`, aimokit.registry); the contract tests pick it up.

Where answers are read: each protocol splits a sample's text into the segments the model wrote itself
(tool calls, tool results and code left out) and names each one (`segments`). The answer region is one
name per protocol by default (`answer_segments`: harmony's final channel, the text after `</think>`, the
prose outside code fences); `solver.answer_region = "anywhere"` reads every segment the model wrote, as
AIMO-3's winners stopped gpt-oss at its first `\\boxed{}` in any channel. Votes, `stop_at_answer`, rewards
and SFT/DPO checks all read through here, so they read the same region.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..config import CompetitionConfig, SamplingConfig

Segment = tuple[str, str]  # (name, text)


class ToolProtocol:
    """The base every protocol extends: the reading of answers is shared, the format is each protocol's."""

    name: str = ""
    keeps_special_tokens: bool = False  # the engine must leave special tokens in the text (harmony reads so)
    default_prompt: str = ""  # the prompts.TEMPLATES entry whose instructions fit this protocol
    fits_prompts: tuple[str, ...] = ("cot",)  # the templates a user may choose instead (solver.prompt)
    answer_segments: frozenset[str] = frozenset({"answer"})  # the segment names the default region reads

    @classmethod
    def check_prompt(cls, prompt: str) -> str | None:
        """Why `prompt` (solver.prompt) cannot be this protocol's, or None when it can ("": its own)."""
        from ..prompts import TEMPLATES

        if not prompt:
            return None
        if prompt not in TEMPLATES:
            return (f"solver.prompt = {prompt!r}: use one of {', '.join(sorted(TEMPLATES))}, or leave it empty for "
                    "the protocol's own")
        if prompt not in {cls.default_prompt, *cls.fits_prompts}:
            return (f"solver.prompt = {prompt!r} asks for a format the {cls.name} protocol does not run (it takes "
                    f"{', '.join(sorted({cls.default_prompt, *cls.fits_prompts}))}): leave solver.prompt empty for "
                    f"the {cls.name} protocol's own instructions")
        return None

    def __init__(self, cfg: "SamplingConfig | None" = None):
        from ..config import SamplingConfig

        self.cfg = cfg if cfg is not None else SamplingConfig(protocol=self.name)
        self.anywhere = self.cfg.answer_region == "anywhere"
        self._checks: dict[bool, Callable[[str], bool]] = {}  # answer_check's callables, by reasoning state

    # -- the format: each protocol's own ------------------------------------
    def prompt(self, engine: Any, problem: str, cfg: "SamplingConfig", comp: "CompetitionConfig") -> str:
        """The text the first round continues (the model's chat template, with whatever the protocol adds)."""
        raise NotImplementedError

    def stop(self, cfg: "SamplingConfig") -> tuple[str, ...]:
        """Strings that end a round so a tool call can run (kept in the output, as vLLM keeps them)."""
        return ()

    def pending_call(self, tail: str) -> str | None:
        """The code of the tool call `tail` (the text since the last tool result) ends with, or None."""
        return None

    def tool_result(self, text: str, output: str) -> str:
        """The text appended after a tool call so generation continues with the result in view."""
        raise NotImplementedError(f"the {self.name} protocol makes no tool calls")

    def segments(self, text: str, prompt: str) -> list[Segment]:
        """What the model wrote itself in `text` (the completion after `prompt`), in order, each named."""
        raise NotImplementedError

    def answer_complete(self, text: str, prompt: str) -> bool:
        """True once the text holds a finished answer (a closed, non-empty \\boxed{} in the answer region):
        the engine may stop the sample there (`solver.stop_at_answer`). Called as text streams in: cheap."""
        raise NotImplementedError

    def written_solution(self, prompt: str, solution: str, answer: str, *, thinks: bool) -> str:
        """A reference solution as this model would have written it after `prompt`, its answer boxed where the
        answer region reads it: what the model's own training template renders for that turn (tested against
        TRL's `*_training.jinja` copies). `thinks`: the model reasons in a `<think>` block (Qwen3, R1-distill;
        `engine.chat.template_thinks` asks the template); then the solution is the block and the answer
        follows it, else the solution is the text (Qwen2.5)."""
        if not (thinks or thinking_opened(prompt)):
            return boxed_after(solution, answer)
        opened = "" if thinking_opened(prompt) else "<think>\n"
        return opened + solution.strip() + "\n</think>\n\n" + boxed_after("", answer).lstrip()

    # -- the answer region: shared ------------------------------------------
    def answer_check(self, prompt: str, text: str) -> Callable[[str], bool]:
        """`answer_complete` for the next round of a sample whose text so far is `text` after `prompt`: the
        engine passes it the round's own text. One callable per reasoning state (inside a block or not), so
        requests that share it batch together."""
        opened = in_thinking(text, prompt)
        if opened not in self._checks:
            self._checks[opened] = AnswerCheck(self, "<think>" if opened else "")
        return self._checks[opened]


    def reads(self, name: str) -> bool:
        return self.anywhere or name in self.answer_segments

    def region(self, text: str, prompt: str) -> list[Segment]:
        """The segments of a sample's text its answer is read from (see the module docstring)."""
        return [(name, body) for name, body in self.segments(text, prompt) if self.reads(name)]

    def answer_text(self, text: str, prompt: str) -> str:
        """The part of a sample's text its answer is read from, as one text."""
        return joined(self.region(text, prompt))

    def answer_at(self, text: str, prompt: str) -> str:
        """The name of the segment the answer's \\boxed{} was read from; "" when the region boxes nothing."""
        return answer_at(self.region(text, prompt))


def joined(region: list[Segment]) -> str:
    return "\n".join(body for _, body in region)


def answer_at(region: list[Segment]) -> str:
    """The name of the region's segment the answer's \\boxed{} was read from; "" when it boxes nothing."""
    from ..answers import last_boxed

    for name, body in reversed(region):
        if last_boxed(body) is not None:
            return name
    return ""


class AnswerCheck:
    """`answer_complete` for one reasoning state, as an engine calls it on the text a request has streamed so far.

    `may_close` lets an engine skip most calls: every protocol's answer ends in `closed_boxed`, whose box closes
    within BOXED_SPAN characters of its `\\boxed{`, so a "}" can complete an answer only when such a box opens
    close enough before it. Without it, each "}" of a long LaTeX-heavy round (one every dozen characters) paid a
    copy and a parse of the whole text: quadratic in the round's length."""

    def __init__(self, protocol: ToolProtocol, prompt: str):
        self.protocol, self.prompt = protocol, prompt

    def __call__(self, text: str) -> bool:
        return self.protocol.answer_complete(text, self.prompt)

    @staticmethod
    def may_close(text: str, at: int) -> bool:
        """Whether the "}" at `at` in `text` can be the brace that completes an answer (never False when it is;
        exact for an engine that checks every "}" as it arrives)."""
        return text.rfind("\\boxed{", max(0, at - BOXED_SPAN - len("\\boxed{")), at) >= 0


def get_protocol(name: str, cfg: "SamplingConfig | None" = None) -> ToolProtocol:
    """The protocol `name`, reading answers as `cfg` says (its answer region; default settings without it)."""
    from ..registry import PROTOCOLS

    return PROTOCOLS.get(name, "protocol")(cfg)


def no_output(output: str) -> str:
    return output if output.strip() else "(no output; use print() to see values)"


BOXED_SPAN = 256  # an integer answer's \boxed{...} is short: a longer one is not closed yet, as far as stopping goes


def closed_boxed(segment: str) -> bool:
    """A `\\boxed{...}` whose braces close on something, within BOXED_SPAN characters of its start.

    Bounded whatever the text: it looks only at the last `\\boxed{` (found from the end, in C) and at most
    BOXED_SPAN characters after it, so streaming checks stay cheap on a model that opens a box and never
    closes it. An empty `\\boxed{}` ("put it in \\boxed{}") is no answer.
    """
    from ..answers import closing_brace

    at = segment.rfind("\\boxed{")
    if at < 0:
        return False
    end = closing_brace(segment, at + 6, BOXED_SPAN)
    return end is not None and bool(segment[at + 7:end].strip())


def thinking_opened(prompt: str, text: str = "") -> bool:
    """The reasoning block was open when `text` began: the chat template opened it (DeepSeek-R1-distill,
    Qwen3-2507 thinking), or the text closes a block it never opened."""
    if prompt.rstrip().endswith("<think>"):
        return True
    close = text.find("</think>")
    return close >= 0 and not 0 <= text.find("<think>") < close


def in_thinking(text: str, prompt: str) -> bool:
    """The text ends inside a reasoning block (cheap: two searches from the end)."""
    close, opened = text.rfind("</think>"), text.rfind("<think>")
    if opened > close:
        return True
    return close < 0 and thinking_opened(prompt)  # a block closed later was open from the start: close >= 0


def think_segments(text: str, prompt: str, name: str = "answer") -> list[Segment]:
    """`text` split at `<think>` / `</think>` into "thinking" and `name` segments (the tags left out)."""
    out: list[Segment] = []
    thinking, pos = thinking_opened(prompt, text), 0
    while pos <= len(text):
        tag = "</think>" if thinking else "<think>"
        at = text.find(tag, pos)
        piece = text[pos:] if at < 0 else text[pos:at]
        if piece:
            out.append(("thinking" if thinking else name, piece))
        if at < 0:
            break
        pos, thinking = at + len(tag), not thinking
    return out


def boxed_after(solution: str, answer: str) -> str:
    """The plain-text ending every protocol's answer segment uses."""
    return f"{solution.rstrip()}\n\nThe answer is \\boxed{{{answer}}}."
