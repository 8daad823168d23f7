"""What every backend takes and gives: requests, results, the driver that feeds them, and the engine facade."""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Protocol

from ..errors import AimokitError


@dataclass(frozen=True)
class GenRequest:
    prompt: str
    max_tokens: int
    seed: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    min_p: float = 0.0
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0  # > 0: report each generated token's entropy over the top-k logprobs
    skip_special_tokens: bool = True  # False: special tokens stay in the text (harmony's channels)
    # Ends the request early, finish "answer", once it returns True for the text so far: a cheap check
    # (the protocol's `answer_complete`), asked only when new text holds a "}". None: run to a stop, EOS or length.
    done_when: Callable[[str], bool] | None = None
    # The prompt as token ids, where the caller kept them (a sample's earlier rounds as generated): the engine
    # takes them as they are, so a continued sample meets the prefix cache on every token it wrote. `prompt`
    # stays the same text. None: the engine tokenizes `prompt`.
    prompt_ids: tuple[int, ...] | None = None


@dataclass
class GenResult:
    text: str = ""
    n_tokens: int = 0
    # "stop" (a stop string), "eos", "length", "answer" (`done_when` held) or "aborted"
    finish: str = "aborted"
    stop_str: str | None = None
    # per generated token, when top_logprobs > 0 (a streamed request cut short: per token it sent, so fewer)
    entropies: list[float] = field(default_factory=list)
    # Token ids that spell `text` exactly (the generated ones where they decode to it, else `text` re-encoded),
    # from backends that take `prompt_ids`; empty elsewhere.
    token_ids: list[int] = field(default_factory=list)


def entropy_of(logprobs: "Iterable[float]") -> float:
    """A token's entropy (nats) over the top-k logprobs the engine reported (the AIMO-3 winners' measure)."""
    return -sum(math.exp(lp) * lp for lp in logprobs)


class Driver(Protocol):
    """What feeds an engine loop: the solver implements it.

    `poll` hands over new requests and cancellations (called between steps),
    `finished` receives each request's result exactly once (completed, or cut
    short and marked "aborted" with what it wrote) and may cancel others,
    `busy` says work is still outstanding elsewhere (code in the sandbox)
    even when the engine holds no request, and `wait` blocks briefly on it.
    """

    def poll(self) -> tuple[list[tuple[Hashable, GenRequest]], list[Hashable]]: ...

    def finished(self, key: Hashable, result: GenResult) -> Iterable[Hashable]: ...

    def busy(self) -> bool: ...

    def wait(self, timeout: float) -> None: ...


class Engine(Protocol):
    """The facade the solver, the kernel and evaluation use, whatever the backend."""

    name: str

    def count_tokens(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int] | None:
        """Token ids of `text` where the backend takes `GenRequest.prompt_ids`; None where it takes only text."""

    def chat_prompt(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str: ...

    def run(self, driver: Driver, deadline: float | None = None) -> None: ...

    def processes(self) -> set[int]: ...

    def close(self) -> None: ...


class EngineError(AimokitError, RuntimeError):
    """The engine could not be started or failed while generating."""
