"""One solve call's working state, the engine loop's Driver (engine.Driver): which samples of which problems are
in flight, what each has written, its code running in the sandbox, its vote, and when a problem is decided.

`Solver` (solver.py) owns the engine, the protocol, the sandbox pools and the clock, and starts one `Rollout`
per `solve` / `solve_stream`; the Rollout reads those through the solver it was given and owns nothing else.
A sample's record (`Sample`) and a problem's result (`ProblemResult`) are in records.py.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Callable, Iterator

from . import genselect
from .answers import extract_answer
from .candidates import Vote
from .records import ProblemResult, Sample  # noqa: F401  (re-exported)
from .votes import decided
from .engine import GenRequest, GenResult
from .problems import Problem
from .protocols.base import answer_at, joined
from .sandbox import ExecResult, run_code

log = logging.getLogger(__name__)


def _seed(base: int, problem_id: str, sample: int, call: int) -> int:
    h = int.from_bytes(hashlib.blake2b(problem_id.encode(), digest_size=4).digest(), "little")
    return (base * 1_000_003 + h * 1009 + sample * 101 + call) % (2**31 - 1)


class Rollout:
    """The Driver for one `Solver.solve` / `Solver.solve_stream` call (see engine.Driver).

    Problems enter through `_admit`: all at once for `solve`, or (streaming) as soon as one sample of room is
    free, their samples starting one by one as room frees (`_start_waiting`), so the engine's batch stays full
    across problem boundaries: a problem that waited for room for all its samples at once left up to
    samples - 1 slots empty at every boundary (7 of 64 at evaluate's 64 in flight with 8 samples).

    Streaming with `tool_room`: a sample waiting on its code in the sandbox holds no place in the engine's
    batch, so up to `tool_room` more samples may start while others do, and `concurrency` keep generating
    through tool turns (`_limit`)."""

    def __init__(self, solver: Any, problems: list[Problem], samples: list[int], deadline: float | None = None,
                 pending: Iterator[Problem] | None = None, pending_samples: int = 0, concurrency: int = 0,
                 on_result: Callable[["ProblemResult"], None] | None = None, keep_responses: bool = False,
                 tool_room: int = 0):
        self.s = solver
        # Answer parsing is bounded in real time, whatever clock the solver was given.
        self.deadline = None if deadline is None else time.monotonic() + (deadline - solver.clock())
        self.problems: list[Problem] = []
        self.prompts: list[str] = []
        self.prompt_ids: list[list[int] | None] = []
        self.prompt_tokens: list[int] = []
        self.keys: list[list[tuple[int, int]]] = []  # each problem's samples
        self.left: list[int] = []  # each problem's samples not done yet
        self.started: list[float] = []  # when each problem entered (the solver's clock)
        self.emitted: list[bool] = []  # its result went to on_result (and its samples were let go)
        # the problems not emitted yet, in admission order: what each step's scans read, so a step's cost follows
        # the problems in flight, not every problem a long evaluation has seen
        self.open: dict[int, None] = {}
        self.samples: dict[tuple[int, int], Sample] = {}
        self.votes: list[list[Vote]] = []
        self.closed: list[bool] = []  # vote decided: no more work
        self.n_answered = 0  # samples with an answer so far, in the order they came
        self.todo: list[tuple[tuple[int, int], GenRequest]] = []
        self.running: dict[Future, tuple[int, int]] = {}
        self.in_engine: set[tuple[int, int]] = set()
        self.pending = pending
        self.pending_samples = pending_samples
        self.concurrency = concurrency
        self.tool_room = tool_room
        self.on_result = on_result
        self.keep_responses = keep_responses
        self.live = 0  # samples not done, over every problem (started or waiting)
        self.waiting: list[tuple[int, int]] = []  # streaming: admitted samples not started yet, oldest first
        self.picks: dict[int, "genselect.Outcome"] = {}  # GenSelect's outcome, by problem
        self.selecting: dict[int, tuple[str, list]] = {}  # a selection request in the engine: (prompt, candidates)
        for p, n in zip(problems, samples):
            self._admit(p, n)
        self._admit_pending()

    def _admit(self, problem: Problem, n: int) -> None:
        s, cfg, pi = self.s, self.s.cfg, len(self.problems)
        prompt = s.protocol.prompt(s.engine, problem.problem, cfg, s.comp)
        ids = s.engine.encode(prompt)  # the Engine protocol's: token ids, or None where the backend takes text
        self.problems.append(problem)
        self.prompts.append(prompt)
        self.prompt_ids.append(ids)
        self.prompt_tokens.append(len(ids) if ids is not None else s.engine.count_tokens(prompt))
        self.keys.append([(pi, k) for k in range(n)])
        self.left.append(n)
        self.started.append(s.clock())
        self.emitted.append(False)
        self.open[pi] = None
        self.votes.append([])
        self.closed.append(False)
        self.live += n
        for key in self.keys[pi]:
            self.samples[key] = Sample(pi, key[1], ids=[] if ids is not None else None)
            self.waiting.append(key)
        self._start_waiting()

    def _in_tool(self) -> int:
        """Samples not done whose code is running in the sandbox (out of the engine until it returns)."""
        return sum(1 for k in self.running.values() if (smp := self.samples.get(k)) is not None and not smp.done)

    def _limit(self) -> int:
        """How many samples may be started and not done (or waiting) now: `concurrency`, plus those of them in
        a tool turn, up to `tool_room` of them."""
        return self.concurrency + (min(self.tool_room, self._in_tool()) if self.tool_room else 0)

    def _start_waiting(self) -> None:
        """Start admitted samples while fewer than `_limit()` are started and not done (all of them when there
        is no limit: `solve`)."""
        if not self.waiting:
            return
        started = self.live - len(self.waiting)
        room = len(self.waiting) if not self.concurrency else self._limit() - started
        if room <= 0:
            return
        go, self.waiting = self.waiting[:room], self.waiting[room:]
        for key in go:
            self.todo.append((key, self._request(self.samples[key])))
            self.in_engine.add(key)

    def _admit_pending(self) -> None:
        """Streaming: waiting samples start as room frees, then the next problem enters once a sample of room
        is free (one always may, when nothing is in flight); what does not fit of its samples waits. A problem
        is drawn only once it can start, never held ahead: drawing may claim it (evaluate's workers), and a
        claimed problem should be one that starts now."""
        self._start_waiting()
        while self.pending is not None:
            if self.live and self.live >= self._limit():
                return
            problem = next(self.pending, None)
            if problem is None:
                self.pending = None
                return
            self._admit(problem, self.pending_samples)

    def _emit_finished(self) -> None:
        """Streaming: each problem whose samples are all done and out of the engine goes to on_result now,
        and its samples are let go (a long evaluation holds only the problems in flight)."""
        if self.on_result is None:
            return
        for pi in list(self.open):
            if self.left[pi] or any(k in self.in_engine for k in [*self.keys[pi], (pi, -1)]):
                continue
            if self.s.cfg.genselect and not self.closed[pi] and pi not in self.picks:
                continue  # its selection is still to come
            self.emitted[pi] = True
            del self.open[pi]
            result = self.s._problem_result(self, pi, self.s.clock() - self.started[pi], self.keep_responses,
                                            None, False)
            for k in self.keys[pi]:
                del self.samples[k]
            if self.s.sessions is not None:  # its interpreters go; spares are topped up for the problems to come
                self.s.sessions.release([(id(self), k) for k in self.keys[pi]])
                threading.Thread(target=self.s.sessions.warm, name="sessions-warm", daemon=True).start()
            self.on_result(result)

    # -- Driver -------------------------------------------------------------
    def poll(self):
        done = [f for f in self.running if f.done()]
        if self.s.cfg.sync_tool_rounds:
            # Re-enter only when nothing is generating and every block has run, in a fixed order: the
            # batch then changes at the same steps in every run, whatever the sandbox's timing.
            if self.in_engine or len(done) < len(self.running):
                done = []
            done.sort(key=lambda f: self.running[f])
        for fut in done:
            key = self.running.pop(fut)
            smp = self.samples.get(key)  # None: its problem was decided and handed out meanwhile
            if smp is None or self.closed[smp.problem] or smp.done:
                continue
            try:
                res = fut.result()
            except Exception as e:  # the sandbox itself failed: report it to the model
                res = ExecResult(output=f"sandbox error: {e}", ok=False, returncode=None)
            self._after_code(smp, res)
        genselect.send_ready(self, lambda pi: _seed(self.s.cfg.seed, self.problems[pi].id, -1, 0))
        self._emit_finished()
        self._admit_pending()
        todo, self.todo = self.todo, []
        return todo, []

    def finished(self, key, result: GenResult):
        if key[1] == -1:  # a GenSelect request
            genselect.receive(self, key, result)
            return ()
        smp = self.samples[key]
        self.in_engine.discard(key)
        smp.text += result.text
        if smp.ids is not None:  # ids that spell the text, or (a backend without them) the text path from now on
            smp.ids = smp.ids + result.token_ids if result.token_ids or not result.text else None
        smp.entropies.extend(result.entropies)
        smp.tokens += result.n_tokens
        smp.context_tokens += result.n_tokens
        smp.calls += 1
        if self.closed[smp.problem]:
            return ()
        if result.finish == "aborted":
            smp.aborted = True
            self._mark_done(smp)
            return ()
        code = self._pending_code(smp) if result.finish != "length" else None
        refusal = self._refusal(smp, code) if code is not None else None
        if code is not None:
            smp.call_codes.append(code)
        if refusal is not None:
            # No sample ends on a call that never runs: the model is told, and answers in one more turn.
            if smp.refusals >= 1 or self._budget_left(smp) < 16:
                return self._finalize(smp)
            smp.refusals += 1
            self._hand_back(smp, refusal)
            return ()
        if code is not None:
            smp.exec_pos = len(smp.text)
            if self.s.sessions is not None:  # the sample's own interpreter keeps its names
                fut = self.s.pool.submit(self.s.sessions.run, (id(self), key), code)
            else:
                prelude = "\n\n".join(smp.clean_code) if self.s.sandbox_cfg.cumulative else ""
                fut = self.s.pool.submit(run_code, code, self.s.sandbox_cfg, prelude)
            self.running[fut] = key
            smp.clean_code.append(code)  # removed again if it fails
            return ()
        if result.finish == "stop" and code is None and smp.calls <= 2 * self.s.cfg.max_rounds:
            # A stop string with no runnable block (a plain fence): keep going.
            if self._budget_left(smp) >= 16:
                self._resubmit(smp)
                return ()
        return self._finalize(smp)

    def _refusal(self, smp: Sample, code: str) -> str | None:
        """The message that answers `code` instead of running it, or None to run it: past the round limit, or
        the same call as the `max_repeat_calls - 1` before it (a loop)."""
        cfg = self.s.cfg
        if smp.code_runs >= cfg.max_rounds:
            return (f"Tool budget spent: this sample has run its {cfg.max_rounds} code calls, so this one was not run. "
                    "Give your final answer now, in \\boxed{}.")
        recent = smp.call_codes[-(cfg.max_repeat_calls - 1):]
        if len(recent) == cfg.max_repeat_calls - 1 and all(c.strip() == code.strip() for c in recent):
            return (f"This call is identical to the {len(recent)} before it and was not run again; its output is "
                    "above. Tool budget spent: give your final answer now, in \\boxed{}.")
        return None

    def busy(self) -> bool:
        return bool(self.running) or bool(self.todo) or bool(self.waiting) or self.pending is not None

    def wait(self, timeout: float) -> None:
        if self.running:
            wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    # -- sample life cycle ------------------------------------------------
    def _budget_left(self, smp: Sample) -> int:
        cfg = self.s.cfg
        room = self.s.max_model_len - self.prompt_tokens[smp.problem] - smp.context_tokens - 8
        return min(cfg.max_tokens_per_round, cfg.max_tokens_total - smp.tokens, room)

    def _request(self, smp: Sample) -> GenRequest:
        cfg, protocol = self.s.cfg, self.s.protocol
        ids = self.prompt_ids[smp.problem]
        return GenRequest(
            prompt=self.prompts[smp.problem] + smp.text,
            prompt_ids=tuple(ids + smp.ids) if ids is not None and smp.ids is not None else None,
            max_tokens=max(1, self._budget_left(smp)),
            seed=_seed(cfg.seed, self.problems[smp.problem].id, smp.index, smp.calls),
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            min_p=cfg.min_p,
            top_logprobs=cfg.top_logprobs,
            skip_special_tokens=not protocol.keeps_special_tokens,
            done_when=protocol.answer_check(self.prompts[smp.problem], smp.text) if cfg.stop_at_answer else None,
            # the stop strings stay on the last round too: gpt-oss stops at <|call|> whatever it is asked, and
            # a call past the limit is answered, not left unrun (`_refusal`)
            stop=protocol.stop(cfg),
        )

    def _resubmit(self, smp: Sample) -> None:
        key = (smp.problem, smp.index)
        self.todo.append((key, self._request(smp)))
        self.in_engine.add(key)

    def _pending_code(self, smp: Sample) -> str | None:
        return self.s.protocol.pending_call(smp.text[smp.exec_pos :])

    def _after_code(self, smp: Sample, res: ExecResult) -> None:
        smp.code_runs += 1
        if not res.ok:
            smp.code_errors += 1
            smp.clean_code.pop()
        out = res.for_model()
        # A failed run's text is a traceback: its line numbers are no printed answer.
        smp.code_outputs.append(out if res.ok else "")
        self._hand_back(smp, out)

    def _hand_back(self, smp: Sample, out: str) -> None:
        """Append the tool's answer (its output, or a refusal) and send the sample back to the engine."""
        appended = self.s.protocol.tool_result(smp.text, out)
        smp.tool_spans.append([len(smp.text), len(smp.text) + len(appended)])
        smp.text += appended
        smp.exec_pos = len(smp.text)
        if smp.ids is not None:
            more = self.s.engine.encode(appended)
            smp.ids += more
            smp.context_tokens += len(more)
        else:
            smp.context_tokens += self.s.engine.count_tokens(appended)
        if self._budget_left(smp) < 16:
            self._finalize(smp)
            return
        self._resubmit(smp)

    def _mark_done(self, smp: Sample) -> None:
        if not smp.done:
            smp.done = True
            self.left[smp.problem] -= 1
            self.live -= 1

    def _finalize(self, smp: Sample) -> list[tuple[int, int]]:
        self._mark_done(smp)
        self._read_answer(smp, self.deadline)
        if smp.answer is None:
            return []
        pi = smp.problem
        self.n_answered += 1
        smp.finished_at = self.n_answered
        self.votes[pi].append(smp.vote(self.s.cfg.entropy_tail))
        pending = self.left[pi]
        if pending and decided(self.votes[pi], pending, self.s.cfg):
            return self._close(pi)
        return []

    def _close(self, pi: int) -> list[tuple[int, int]]:
        self.closed[pi] = True
        cancel = [k for k in self.keys[pi] if not self.samples[k].done]
        for k in cancel:
            self.samples[k].aborted = True
            self._mark_done(self.samples[k])
        gone = set(cancel)
        self.todo = [(k, r) for k, r in self.todo if k not in gone]
        self.waiting = [k for k in self.waiting if k not in gone]  # never started: nothing to cut
        in_engine = [k for k in cancel if k in self.in_engine]
        self.in_engine.difference_update(in_engine)
        return in_engine

    def close_all(self) -> None:
        """On deadline or error: partial samples may still carry a printed answer."""
        for pi in range(len(self.problems)):
            if self.votes[pi] or self.emitted[pi]:
                continue
            for smp in (self.samples[k] for k in self.keys[pi]):
                if smp.answer is None:
                    # At or past the deadline: the fast paths only (see extract_answer).
                    self._read_answer(smp, time.monotonic())
                    if smp.answer is not None:
                        self.votes[pi].append(smp.vote(self.s.cfg.entropy_tail, scale=0.5))

    def _read_answer(self, smp: Sample, deadline: float | None) -> None:
        """The sample's answer, read where the protocol's answer region is, and where it was found."""
        region = self.s.protocol.region(smp.text, self.prompts[smp.problem])  # read once: the text is untrusted
        ex = extract_answer(joined(region), smp.code_outputs, self.s.comp, deadline)
        smp.answer, smp.boxed = ex.answer, ex.boxed
        smp.answer_at = answer_at(region) if ex.boxed else ("printed" if ex.answer is not None else "")
