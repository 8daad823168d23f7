"""What a submission kernel runs: `predict` for one problem, whatever happens.

`Kernel.predict` never raises and always returns an answer in range before
the time budget runs out:
- the engine starts lazily (the AIMO-2/3 server must start serving within
  15 minutes);
- an engine that raises mid-problem leaves its votes so far as the answer, and
  a new one is started if the remaining budget covers the measured start time;
- a solve that hangs past its deadline is abandoned by a watchdog: the problem
  is answered from its votes so far, the engine's processes (vLLM runs its core
  in a process of its own) are killed, and a fresh engine takes over;
- only when no engine can start again do the remaining problems get the fallback;
- a problem id seen before gets its first answer again, at no cost;
- every result is appended to results.jsonl (fsynced) as it is produced.

How the kernel is reached (the competition server, the AIMO-1 environment or
the local gateway) lives in `serving`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .budget import TimeBudget
from .config import KernelConfig
from .engine import Engine, EngineError, create_engine
from .io import append_line
from .problems import Problem
from .solver import ProblemResult, SolveError, Solver

log = logging.getLogger("aimokit")

EngineFactory = Callable[[KernelConfig], Engine]
MAX_ENGINE_STARTS = 4


def _default_factory(cfg: KernelConfig) -> Engine:
    return create_engine(cfg.engine)


def _dead(pids: set[int]) -> list[int]:
    """Those of `pids` that have died (a killed child stays a zombie until reaped: that counts as dead)."""
    try:
        import psutil
    except ImportError:
        return []
    dead = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                dead.append(pid)
        except psutil.NoSuchProcess:
            dead.append(pid)
        except psutil.Error:
            continue
    return dead


def _descendants() -> set[int]:
    """This process's descendants now (an engine start's processes are the ones that were not there before it)."""
    try:
        import psutil

        return {c.pid for c in psutil.Process().children(recursive=True)}
    except Exception:
        return set()


def _kill_pids(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Kernel:
    POLL_S = 0.5  # how often a running solve's engine processes are checked for life

    def __init__(
        self,
        cfg: KernelConfig,
        total_problems: int | None = None,
        engine_factory: EngineFactory = _default_factory,
        started_at: float | None = None,
        watchdog_grace_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.engine_factory = engine_factory
        self.clock = clock
        self.budget = TimeBudget(
            cfg.budget,
            cfg.competition.time_limit_s,
            total_problems or cfg.competition.expected_problems,
            cfg.solver,
            started_at=started_at if started_at is not None else clock(),
            clock=clock,
        )
        self.out_dir = Path(cfg.run.output_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.results_path = self.out_dir / "results.jsonl"
        self.engine: Engine | None = None
        self.engine_pids: set[int] = set()  # the current engine's own processes (see Engine.processes)
        self.solver: Solver | None = None
        self.engine_starts = 0
        self.engine_start_s = 0.0
        self.last_start_s: float | None = None  # measured: what a restart will cost
        self.watchdog_grace_s = watchdog_grace_s
        self.results: list[ProblemResult] = []
        self.answers: dict[str, int] = {}  # by problem id: a repeated id gets its first answer
        self.events: list[str] = []  # what went wrong, in words, for the summary
        self.closed = False  # after close (a SIGTERM, the end): a solve still running records nothing

    def record_event(self, msg: str, *args: Any) -> None:
        text = msg % args if args else msg
        self.events.append(text)
        log.error(text)

    # -- engine life cycle --------------------------------------------------
    def _ensure_solver(self) -> Solver | None:
        if self.solver is not None:
            return self.solver
        if self.engine_starts > 0:
            # A restart costs start-up time: only worth it if enough remains for it and one problem.
            cost = self.last_start_s if self.last_start_s is not None else self.cfg.budget.startup_estimate_s
            need = cost + self.cfg.budget.min_problem_s
            if self.engine_starts >= MAX_ENGINE_STARTS or self.budget.remaining() < need:
                return None
            log.warning("starting a new engine (start %d; the last start took %.0fs, %.0fs remain)",
                        self.engine_starts + 1, cost, self.budget.remaining())
        self.engine_starts += 1
        t = self.clock()
        try:
            self.engine = self._start_engine()
        except Exception as e:
            self.record_event("engine start %d failed: %r", self.engine_starts, e)
            log.exception("engine start failed")
            return None
        finally:
            self.last_start_s = self.clock() - t
            self.engine_start_s += self.last_start_s
        try:  # only the engine knows which processes are its own (vLLM's core); others are in-process
            self.engine_pids = set(getattr(self.engine, "processes", set)())
        except Exception:
            self.engine_pids = set()
        self.solver = Solver(
            self.engine, self.cfg.solver, self.cfg.sandbox, self.cfg.competition,
            max_model_len=self.cfg.engine.max_model_len, clock=self.clock,
        )
        return self.solver

    def _start_engine(self) -> Engine:
        """The engine factory, in this thread as always, with a watchdog beside it. A start that dies halfway can
        block for good (vLLM's start waited on a core whose workers had died, seen at TP 2): past
        `engine.start_timeout_s`, or the end of the budget, the watchdog kills the processes the start spawned,
        which ends the wait (vLLM's start fails when its core process dies), and the start counts as failed, so
        the problems still get answers in time."""
        before = _descendants()
        t0 = self.clock()
        limit = max(0.0, min(self.cfg.engine.start_timeout_s, self.budget.remaining()))
        done, killed = threading.Event(), set()

        def watch() -> None:
            while not done.wait(self.POLL_S):
                if self.clock() - t0 >= limit:
                    killed.update(_descendants() - before)
                    _kill_pids(killed)
                    return

        threading.Thread(target=watch, name=f"engine-start-watchdog-{self.engine_starts}", daemon=True).start()
        try:
            return self.engine_factory(self.cfg)
        except Exception as e:
            if killed:
                raise EngineError(f"the engine start did not return in {limit:.0f} s (engine.start_timeout_s = "
                                  f"{self.cfg.engine.start_timeout_s:.0f}, or the budget's end); killed the "
                                  f"{len(killed)} processes it started") from e
            raise
        finally:
            done.set()

    def _drop_engine(self) -> None:
        """Close the engine politely (it failed, but its process may still answer)."""
        if self.solver is not None:
            self.solver.close()
        if self.engine is not None:
            try:
                self.engine.close()
            except Exception:
                log.exception("engine close failed")
        _kill_pids(self.engine_pids)  # whatever the close left behind
        self.solver, self.engine, self.engine_pids = None, None, set()

    def _abandon_engine(self) -> None:
        """A hung engine: kill its processes without waiting on it, and forget it."""
        if self.solver is not None:
            self.solver.close()
        _kill_pids(self.engine_pids)
        self.solver, self.engine, self.engine_pids = None, None, set()

    # -- the one entry point ---------------------------------------------------
    def predict(self, problem_id: str, problem: str, gold: int | None = None) -> int:
        problem_id = str(problem_id)
        if problem_id in self.answers:
            log.warning("problem %s was sent again; giving its first answer %d", problem_id, self.answers[problem_id])
            return self.answers[problem_id]
        t0 = self.clock()
        p = Problem(problem_id, problem, gold)
        try:
            res = self._solve(p)
        except Exception:  # never let one problem sink the submission
            log.exception("predict failed for %s", problem_id)
            res = self._fallback(p, "error")
        if self.closed:  # stopped meanwhile: this answer reaches nobody, so it is not recorded
            return res.answer
        gen_seconds = res.seconds  # the solver's own time: engine start-up excluded
        res.seconds = self.clock() - t0
        self.budget.record(res.tokens, gen_seconds, res.samples)
        self.results.append(res)
        self.answers[problem_id] = res.answer
        self._append(res)
        self._progress(res)
        return res.answer

    def _solve(self, p: Problem) -> ProblemResult:
        plan = self.budget.plan()
        if plan.samples <= 0 or plan.seconds <= 0:
            return self._fallback(p, "no-time")
        solver = self._ensure_solver()
        if solver is None:
            return self._fallback(p, "error")
        plan = self.budget.plan()  # the engine start may have used time
        if plan.samples <= 0 or plan.seconds <= 0:
            return self._fallback(p, "no-time")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["res"] = solver.solve([p], plan.deadline, plan.samples)[0]
            except SolveError as e:
                box["res"], box["error"] = e.results[0], e.cause
            except BaseException as e:  # reported to the waiting thread
                box["error"] = e

        th = threading.Thread(target=work, name=f"solve-{p.id}", daemon=True)
        th.start()
        # The engine checks the deadline between steps; if a step itself hangs,
        # give up on that engine rather than on the competition. An engine process
        # that dies (vLLM's core, killed or crashed) can leave the step blocked for
        # good, so that is checked while waiting, not only at the deadline.
        give_up = plan.deadline + self.watchdog_grace_s
        dead: list[int] = []
        while th.is_alive() and self.clock() < give_up:
            th.join(min(self.POLL_S, max(0.0, give_up - self.clock())))
            dead = _dead(self.engine_pids) if th.is_alive() else []
            if dead:
                break
        if dead:
            return self._give_up(solver, p, "error", f"engine process {dead} died while solving {p.id}",
                                 "a new engine starts if time allows")
        if th.is_alive():
            return self._give_up(solver, p, "hung", f"solve of {p.id} hung {self.watchdog_grace_s:.1f}s past its "
                                 f"deadline", f"killing the engine ({len(self.engine_pids)} processes) and replacing it")
        if "error" in box:
            self.record_event("engine failed on %s: %r; answered from the votes so far, a new engine starts if time allows",
                        p.id, box["error"])
            self._drop_engine()
            return box.get("res") or self._fallback(p, "error")
        return box["res"]

    def _give_up(self, solver: Solver, p: Problem, why: str, what: str, then: str) -> ProblemResult:
        """Answer `p` from the votes its solve has so far, and abandon the engine (a new one may start)."""
        so_far = solver.results_so_far(why)
        res = so_far[0] if so_far else self._fallback(p, why)
        self.record_event("%s; answered %d from %d votes so far; %s", what, res.answer, len(res.votes), then)
        self._abandon_engine()
        return res

    def _fallback(self, p: Problem, why: str) -> ProblemResult:
        from .answers import is_correct

        a = self.cfg.competition.fallback_answer
        return ProblemResult(
            id=p.id, answer=a, votes={}, samples=0, answered=0, tokens=0, seconds=0.0,
            stopped=why, gold=p.answer, correct=is_correct(a, p.answer),
        )

    # -- records ------------------------------------------------------------
    def _append(self, res: ProblemResult) -> None:
        row = res.as_row()
        row["budget_used"] = round(self.budget.used_fraction(), 4)
        try:
            append_line(self.results_path, json.dumps(row))
        except OSError as e:  # a full disk must not cost the answer: the gateway still gets it
            self.record_event("could not append to %s: %s", self.results_path, e)

    def _progress(self, res: ProblemResult) -> None:
        n, total = self.budget.done, self.budget.total_problems
        tps = res.tokens / res.seconds if res.seconds > 0 else 0.0
        top = sorted(res.votes.items(), key=lambda kv: -kv[1])[:3]
        mark = {True: " ✓", False: " ✗", None: ""}[res.correct]
        log.info(
            "[%d/%d] %s → %d%s  votes %s  %d/%d answered  %d tok  %.1fs (%.0f tok/s)  %s | "
            "budget %.0f%% used, %.0fs left",
            n, total, res.id, res.answer, mark, {k: round(v, 2) for k, v in top}, res.answered,
            res.samples, res.tokens, res.seconds, tps, res.stopped,
            100 * self.budget.used_fraction(), max(0.0, self.budget.remaining()),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "problems": len(self.results),
            "model": self.cfg.engine.model,
            "lora": self.cfg.engine.lora,
            "limit_s": self.budget.limit_s,
            "elapsed_s": round(self.clock() - self.budget.started_at, 2),
            "budget_used": round(self.budget.used_fraction(), 4),
            "engine_start_s": round(self.engine_start_s, 2),
            "engine_starts": self.engine_starts,
            "tokens": self.budget.tokens,
            "generation_s": round(self.budget.gen_seconds, 2),
            "engine_backend": getattr(self.engine, "name", None),
            "engine_fallback": getattr(self.engine, "fell_back", "") or None,
            "engine_warm_up": getattr(self.engine, "warm_up", None),  # the shape sweep inside the start, if any
            "engine_compile_cache": getattr(self.engine, "compile_cache", None),  # seeded, loaded, saved
            "protocol": self._protocol_summary(),
            "sandbox_layers": self.solver.sandbox_layers if self.solver is not None else None,
            "events": self.events,
        }

    def _protocol_summary(self) -> dict[str, Any]:
        """Which protocol ran, which harmony renderer rendered it, and how many readings met malformed output."""
        s = self.cfg.solver
        out: dict[str, Any] = {"name": s.protocol, "answer_region": s.answer_region}
        if s.protocol == "harmony":
            from .protocols.harmony_render import renderer

            out["renderer"] = renderer(s.harmony_renderer).name
        if self.solver is not None:
            out["malformed_read"] = getattr(self.solver.protocol, "recovered", 0)
        return out

    def close(self) -> None:
        from .io import atomic_write

        self.closed = True
        try:
            atomic_write(self.out_dir / "kernel_summary.json", json.dumps(self.summary(), indent=2))
        except OSError as e:
            log.error("could not write kernel_summary.json: %s", e)
        self._drop_engine()
