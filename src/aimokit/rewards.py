"""GRPO rewards from the kit itself: the kernel's grader, the protocol's answer format, and length.

Each reward is a TRL reward function, `f(prompts, completions, **columns) -> list[float]`, where the
columns are the dataset's (`answer`: the gold). They read a completion exactly as the kernel reads a
sample: the protocol says where the answer is (`answer_text`) and whether it is complete
(`answer_complete`), and the kernel's extraction and equivalence grade it. So what GRPO rewards is what a
submission scores. A reward that raises stops training with an error that names it and the completion.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Callable

from .answers import extract_answer, is_correct
from .config import CompetitionConfig
from .errors import AimokitError

Reward = Callable[..., list[float]]


class RewardError(AimokitError, RuntimeError):
    """A reward function failed; the message names it, the completion, and what to fix."""


def _text(completion: Any) -> str:
    """TRL passes a completion as text, or as chat messages for conversational data."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


def _prompt(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else _text(prompt or [])


def completion_texts(protocol: Any, tokenizer: Any, completions: list, completion_ids: list | None) -> list[str]:
    """The completions as the kernel reads them. TRL decodes completions with special tokens skipped, which
    erases harmony's channels (no final channel would ever be found): for a protocol that keeps special
    tokens, the text is decoded again from TRL's `completion_ids` with them kept."""
    if not protocol.keeps_special_tokens:
        return [_text(c) for c in completions]
    if completion_ids is None or tokenizer is None:
        raise RewardError(f"the {protocol.name} protocol reads special tokens, which TRL's decoded completions "
                          "drop: the reward needs completion_ids and the tokenizer (build it with rewards.resolve)")
    return [tokenizer.decode(list(ids), skip_special_tokens=False) for ids in completion_ids]


def correct(protocol: Any, comp: CompetitionConfig, timeout_s: float = 2.0, tokenizer: Any = None) -> Reward:
    """1 where the answer the kernel would read equals the gold (`answer` column), else 0."""
    def correct(prompts, completions, answer, completion_ids=None, **_) -> list[float]:
        out = []
        texts = completion_texts(protocol, tokenizer, completions, completion_ids)
        for prompt, text, gold in zip(prompts, texts, answer):
            region = protocol.answer_text(text, _prompt(prompt))
            got = extract_answer(region, [], comp, time.monotonic() + timeout_s).answer
            out.append(1.0 if got is not None and is_correct(got, gold) else 0.0)
        return out
    return correct


def answer_format(protocol: Any, tokenizer: Any = None) -> Reward:
    """1 where the completion ends its answer as the protocol expects (a closed box where answers are read)."""
    def answer_format(prompts, completions, completion_ids=None, **_) -> list[float]:
        texts = completion_texts(protocol, tokenizer, completions, completion_ids)
        return [1.0 if protocol.answer_complete(t, _prompt(p)) else 0.0 for p, t in zip(prompts, texts)]
    return answer_format


def length(target_tokens: int) -> Reward:
    """0 up to `target_tokens`, then -1 per `target_tokens` more (shorter solutions, as AIMO-2's teams trained)."""
    def length(prompts, completions, completion_ids=None, **_) -> list[float]:
        counts = [len(ids) for ids in completion_ids] if completion_ids is not None else \
            [len(_text(c).split()) for c in completions]
        return [-max(0, n - target_tokens) / target_tokens for n in counts]
    return length


BUILT_IN = ("correct", "format", "length")


def resolve(names: list[str], protocol: Any, comp: CompetitionConfig, length_target: int,
            tokenizer: Any = None) -> list[Reward]:
    """The reward functions a config names: built-ins, or `module:function` for one of your own. `tokenizer`
    decodes completions with special tokens kept, for a protocol that reads them (harmony)."""
    out = []
    for name in names:
        if name == "correct":
            fn = correct(protocol, comp, tokenizer=tokenizer)
        elif name == "format":
            fn = answer_format(protocol, tokenizer)
        elif name == "length":
            fn = length(length_target)
        elif ":" in name:
            module, attr = name.split(":", 1)
            try:
                fn = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as e:
                raise RewardError(f"reward {name!r}: {e}; name a function as module:function on the Python path") from e
        else:
            raise RewardError(f"unknown reward {name!r}: use {', '.join(BUILT_IN)} or module:function")
        out.append(guarded(fn, name))
    return out


def guarded(fn: Reward, name: str) -> Reward:
    """`fn`, with a failure turned into a RewardError that names the reward and the completion it choked on."""
    def reward(prompts, completions, **kw) -> list[float]:
        try:
            values = fn(prompts, completions, **kw)
        except Exception as e:
            first = _text(completions[0])[:80] if completions else ""
            raise RewardError(f"reward {name!r} raised {e!r} on a batch of {len(completions)} completions "
                              f"(the first begins {first!r}); fix the function, or leave it out of `rewards`") from e
        if len(values) != len(completions):
            raise RewardError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions; "
                              "it must return one float (or None) per completion")
        return values
    reward.__name__ = getattr(fn, "__name__", name)
    return reward
