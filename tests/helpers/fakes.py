"""Stand-ins the tests share: a scripted engine on the real engine loop, and a clock the test moves.

`ScriptedEngine` is a real backend of the kit's shared loop (`QueuedEngine`),
so it keeps exactly the contract vLLM and transformers keep; only its model is
a Python function of the prompt. With a `FakeClock`, its `step_s` moves the
clock instead of sleeping, so budget and deadline tests take no wall time.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from aimokit.engine import GenRequest, GenResult, QueuedEngine


def answered_at(text: str, done_when: Callable[[str], bool] | None, start: int = 0) -> int | None:
    """Where a text generated whole first satisfies `done_when`: the end of the shortest prefix, checked at
    each "}" from `start` on, or None: the vLLM backend's own scan of a streamed delta (`Streamed.answer_end`)."""
    if done_when is None:
        return None
    from aimokit.engine.vllm_outputs import Streamed

    streamed = Streamed(done_when)
    streamed.text = text
    return streamed.answer_end(start)


class FakeClock:
    """A monotonic clock that moves only when told to (`advance`), and by a tick per call if asked."""

    def __init__(self, start: float = 1000.0, tick: float = 0.0):
        self.now, self.tick = start, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedEngine(QueuedEngine):
    """An engine whose 'model' is `respond(prompt, request)`; one request a step.

    `step_s` is the decode time of a request (slept, or moved on a FakeClock);
    `fail_after` raises on the next step after that many.
    """

    name = "scripted"
    batch_size = 1
    step_honours_deadline = True  # a request cut by the deadline reports "partial" itself

    def __init__(self, respond: Callable[[str, GenRequest], GenResult], step_s: float = 0.0,
                 fail_after: int | None = None, clock: Callable[[], float] | None = None):
        super().__init__(clock or time.monotonic)
        self.respond = respond
        self.step_s = step_s
        self.fail_after = fail_after
        self.pass_time = getattr(clock, "advance", time.sleep)
        self.calls = 0
        self.prompts: list[str] = []
        self.cancelled: list = []

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def chat_prompt(self, messages, tools=None):
        tools_text = f"<tools>{json.dumps(tools)}</tools>" if tools else ""
        return tools_text + "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    def abort(self, keys):
        self.cancelled.extend(keys)
        return super().abort(keys)

    def generate_batch(self, requests, deadline):
        (req,) = requests
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated engine crash")
        if self.step_s:
            self.pass_time(self.step_s)
        if deadline is not None and self.clock() >= deadline:
            return [GenResult("partial", 3, "aborted")]
        self.prompts.append(req.prompt)
        res = self.respond(req.prompt, req)
        cut = answered_at(res.text, req.done_when)
        if cut is not None and cut < len(res.text):  # a streaming engine would have stopped there
            res = GenResult(res.text[:cut], max(1, len(res.text[:cut].split())), "answer", None,
                            res.entropies[: len(res.text[:cut].split())])
        return [res]

    def close(self):
        pass


def tir_respond(prompt: str, req: GenRequest) -> GenResult:
    """First call writes code; once the output is in the context, box it."""
    if "```output\n" not in prompt:
        text = "Let me compute it.\n```python\nx = 6 * 7\nprint(x)\n```\n"
        return GenResult(text, 20, "stop", "\n```\n")
    out = prompt.rsplit("```output\n", 1)[1].split("\n```", 1)[0]
    return GenResult(f"The code printed {out}, so the answer is \\boxed{{{out}}}.", 12, "eos")


def solve_one(respond: Callable[[str, GenRequest], GenResult], cfg, problem=None, samples: int = 4):
    """One problem solved by the real Solver on a ScriptedEngine under `cfg` (a KernelConfig), responses kept."""
    from aimokit.problems import Problem
    from aimokit.solver import Solver

    solver = Solver(ScriptedEngine(respond), cfg.solver, cfg.sandbox, cfg.competition)
    try:
        return solver.solve([problem or Problem("p", "q", 9)], samples=samples, keep_responses=True)[0]
    finally:
        solver.close()
