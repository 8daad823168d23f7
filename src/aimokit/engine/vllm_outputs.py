"""What the vLLM backend reads from vLLM's outputs, and keeps of each request it has in vLLM: each
position's entropy from flat logprobs (`position_entropies`), the text, ids and entropies of a DELTA-streamed
request (`Streamed`), and the request itself (`Request`). Plain data and functions, so the answer-check
benchmark and the tests read them without an engine."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from .types import GenResult, entropy_of


@dataclass
class Streamed:
    """What a DELTA-streamed request has written so far."""

    done_when: Callable[[str], bool]
    text: str = ""
    ids: list[int] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)

    def result(self, finish: str, stop_str: str | None = None) -> GenResult:
        return GenResult(self.text, len(self.ids), finish, stop_str, self.entropies, self.ids)

    def answer_end(self, start: int) -> int | None:
        """Where the text first holds a complete answer, checked at each "}" from `start` (the newest delta's
        offset) on: a delta of several tokens may run past the brace that closed it. A check that says which
        braces cannot close an answer (`AnswerCheck.may_close`) spares the rest a copy of the text."""
        may_close = getattr(self.done_when, "may_close", None)
        at = self.text.find("}", start)
        while at >= 0:
            if (may_close is None or may_close(self.text, at)) and self.done_when(self.text[: at + 1]):
                return at + 1
            at = self.text.find("}", at + 1)
        return None


@dataclass
class Request:
    """What the engine keeps of one request it has in vLLM, by vLLM's request id."""

    key: Hashable  # the caller's
    skip_special_tokens: bool  # its ids are checked to spell its text with the same setting
    streamed: Streamed | None = None  # DELTA outputs gathered here (a request that may end at its answer)


def position_entropies(completion: Any) -> list[float]:
    """Each position's entropy over its top logprobs. Requests ask for vLLM's flat logprobs (a few flat lists per
    request instead of a dict and k objects per token, which the garbage collector would walk); a position's run
    holds the sampled token first and the top k after it, the sampled one again when it is among them."""
    lp = completion.logprobs
    if not lp:
        return []
    starts = getattr(lp, "start_indices", None)
    if starts is None:  # the list-of-dicts form
        return [entropy_of(x.logprob for x in pos.values()) for pos in lp]
    # The sampled token counts once: when it repeats among the top k, the run's top k are the distribution read.
    # Inline rather than entropy_of over a dict per position: this runs for every streamed token, between the
    # engine's steps (1.3 -> 0.7 us a token on this CPU).
    ids, values, exp = lp.token_ids, lp.logprobs, math.exp
    out = []
    for s, e in zip(starts, lp.end_indices):
        lo = s + 1 if ids[s] in ids[s + 1:e] else s
        out.append(-sum([exp(v) * v for v in values[lo:e]]))
    return out
