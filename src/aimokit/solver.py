"""Tool-integrated reasoning over many samples, voted into one answer.

Every live sample of every problem shares one engine loop. A sample
generates until a code block closes; its code goes to the sandbox pool while
the engine keeps generating for the others; its output is appended and the
sample re-enters the batch (prefix caching makes the re-read cheap). Each
finished sample casts a weighted vote; once a problem's vote is decided its
remaining samples are cancelled. A deadline stops everything, and whatever
has been voted stands.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from . import mathparse
from .answers import is_correct
from . import responses
from .votes import scores, winner
from .config import CompetitionConfig, SandboxConfig, SamplingConfig
from .engine import Engine
from .errors import AimokitError
from .problems import Problem
from .protocols import get_protocol
from .sandbox import probe_layers
from .sessions import SessionPool
from .rollout import ProblemResult, Rollout, Sample  # noqa: F401  (the records, re-exported)

log = logging.getLogger(__name__)


class Solver:
    """Turns problems into answers with one engine; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        solver: SamplingConfig,
        sandbox: SandboxConfig,
        competition: CompetitionConfig,
        max_model_len: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.engine = engine
        self.protocol = get_protocol(solver.protocol, solver)  # how the conversation is rendered and read
        self.clock = clock  # deadlines given to solve() are on this clock (the kernel's, the engine's)
        self.cfg = solver
        self.sandbox_cfg = sandbox
        self.comp = competition
        self.max_model_len = max_model_len
        self.pool = ThreadPoolExecutor(max_workers=sandbox.workers, thread_name_prefix="sandbox")
        self.sessions = SessionPool(sandbox, 0) if sandbox.sessions and self.protocol.name != "cot" else None
        self.current: tuple[Rollout, float] | None = None  # the solve in progress and its start
        # Which kernel-enforced layers hold for model code here, asked of one sandboxed process, said at start.
        self.sandbox_layers = probe_layers(sandbox) if self.protocol.name != "cot" else {}
        if self.sandbox_layers:
            said = ", ".join(f"{k} {v}" for k, v in self.sandbox_layers.items())
            missing = [k for k in ("seccomp", "landlock") if not self.sandbox_layers[k].startswith(("on", "abi"))]
            if missing and sandbox.missing_layer == "refuse":
                log.error("sandbox layers: %s; model code will not run (sandbox.missing_layer = 'refuse')", said)
            elif missing:
                log.warning("sandbox layers: %s; model code runs without %s (sandbox.missing_layer = 'run')",
                            said, " and ".join(missing))
            else:
                log.info("sandbox layers: %s", said)
        mathparse.shared_worker().start()  # sympy's import is paid now, not by the first boxed answer

    def solve(
        self,
        problems: list[Problem],
        deadline: float | None = None,
        samples: int | list[int] | None = None,
        keep_responses: bool = False,
    ) -> list[ProblemResult]:
        """Solve a batch of problems together; never raises for engine failures.

        An engine exception ends the batch early with stopped="error" (the
        caller decides whether to restart the engine); the answers are still
        whatever the votes so far say, or the competition's fallback.
        """
        counts = samples if isinstance(samples, list) else [samples or self.cfg.samples] * len(problems)
        return self._solve(dict(problems=problems, samples=counts, keep_responses=keep_responses), deadline,
                           sum(counts))

    def solve_stream(
        self,
        problems: Iterable[Problem],
        on_result: Callable[[ProblemResult], None],
        samples: int | None = None,
        concurrency: int = 256,
        deadline: float | None = None,
        keep_responses: bool = False,
        tool_room: int = 0,
    ) -> list[ProblemResult]:
        """Solve problems one after another in one engine loop, `samples` each: a problem enters as soon as one
        sample of room is free under `concurrency` (its samples start as room frees), and goes to `on_result` the
        moment its last sample is done (so a caller can write it away). `tool_room`: up to this many more samples
        may start while others wait on their code, so `concurrency` keep generating through tool turns. Returns
        what the deadline or an engine failure left unfinished (normally nothing); SolveError carries those too.
        Why: solving problems in batches lets the engine's batch drain at the end of every batch, and waits on
        the slowest problem of each."""
        n = samples or self.cfg.samples
        return self._solve(dict(problems=[], samples=[], pending=iter(problems), pending_samples=n,
                                concurrency=max(concurrency, n), on_result=on_result,
                                keep_responses=keep_responses, tool_room=tool_room), deadline,
                           max(concurrency, n) + tool_room)

    def _solve(self, run_args: dict, deadline: float | None, in_flight: int) -> list[ProblemResult]:
        start = self.clock()
        if self.sessions is not None:  # spares started while the engine generates the first round
            self.sessions.spare_target = self.sandbox_cfg.session_pool or 2 * in_flight
            threading.Thread(target=self.sessions.warm, name="sessions-warm", daemon=True).start()
        run = Rollout(self, deadline=deadline, **run_args)
        self.current = (run, start)
        error: BaseException | None = None
        try:
            self.engine.run(run, deadline)
        except Exception as e:  # an engine crash must not lose the problem
            log.exception("engine failed while solving %s", [p.id for p in run.problems])
            error = e
        # Samples left unfinished by an engine that returned without error were stopped for the deadline
        # (the engine does not start a step it expects to end past it).
        timed_out = deadline is not None and (self.clock() >= deadline or any(
            (not x.done or x.aborted) and not run.closed[x.problem] for x in run.samples.values()))
        results = self._results(run, start, run.keep_responses, "error" if error is not None else None, timed_out)
        recovered = getattr(self.protocol, "recovered", 0)
        if recovered:
            log.info("%s: %d sample readings met malformed output and read it as far as it went (so far)",
                     self.protocol.name, recovered)
        self.current = None
        if self.sessions is not None:  # between problems: no state carries over (old processes die meanwhile)
            self.sessions.reset(wait=False)
        if error is not None:
            raise SolveError(results, error)
        return results

    def results_so_far(self, stopped: str) -> list[ProblemResult] | None:
        """The answers the votes of the solve in progress give now (for a caller that gave up waiting on it)."""
        current = self.current
        if current is None:
            return None
        run, start = current
        return self._results(run, start, False, stopped, True)

    def _results(self, run: "Rollout", start: float, keep_responses: bool, stopped: str | None,
                 timed_out: bool) -> list[ProblemResult]:
        """The problems not handed out yet (all of them, for `solve`)."""
        run.close_all()
        seconds = self.clock() - start
        return [self._problem_result(run, pi, seconds, keep_responses, stopped, timed_out)
                for pi in range(len(run.problems)) if not run.emitted[pi]]

    def _problem_result(self, run: "Rollout", pi: int, seconds: float, keep_responses: bool, stopped: str | None,
                        timed_out: bool) -> ProblemResult:
        p = run.problems[pi]
        smps = [run.samples[k] for k in run.keys[pi]]
        if stopped is not None:
            why = stopped
        elif run.closed[pi]:
            why = "decided"
        elif timed_out and any(not x.done or x.aborted for x in smps):
            why = "deadline"
        else:
            why = "exhausted"
        votes = list(run.votes[pi])
        answer = winner(votes, self.cfg, self.comp.fallback_answer)
        pick = run.picks.get(pi)
        if pick is not None and pick.answer is not None:
            answer = pick.answer
        res = ProblemResult(
            id=p.id,
            answer=answer,
            votes=scores(votes, self.cfg),
            samples=len(smps),
            answered=sum(1 for x in smps if x.answer is not None),
            tokens=sum(x.tokens for x in smps) + (pick.tokens if pick is not None else 0),
            seconds=seconds,
            stopped=why,
            code_runs=sum(x.code_runs for x in smps),
            code_errors=sum(x.code_errors for x in smps),
            gold=p.answer,
            correct=is_correct(answer, p.answer),
            genselect=pick.why if pick is not None else "",
            votes_in=[dataclasses.asdict(v) for v in votes],
        )
        if keep_responses:
            res.responses = [responses.sample_record(x, run.prompts[pi], self.cfg.entropy_tail)
                             for x in sorted(smps, key=lambda x: x.index)]
        return res

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.sessions is not None:
            self.sessions.close()


class SolveError(AimokitError, RuntimeError):
    """The engine failed mid-solve; `results` hold the best answers so far."""

    def __init__(self, results: list[ProblemResult], cause: BaseException):
        super().__init__(f"engine failed: {cause!r}")
        self.results = results
        self.cause = cause
