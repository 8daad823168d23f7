"""Share the competition's time limit between problems, re-planned as it goes.

The clock starts when the kernel starts, so engine start-up is paid from the
same limit. Each problem gets a share of what remains, clamped, and never so
much that a later problem could not get its reserve; the number of samples is
re-planned from the measured throughput and tokens per sample. Time a problem
does not use (an early-decided vote) flows to the problems after it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from .config import BudgetConfig, SamplingConfig


@dataclass
class Plan:
    deadline: float  # monotonic seconds
    seconds: float
    samples: int


@dataclass
class TimeBudget:
    cfg: BudgetConfig
    limit_s: float
    total_problems: int
    solver: SamplingConfig
    started_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    tokens: int = 0
    gen_seconds: float = 0.0
    samples_run: int = 0
    best_tps: float = 0.0

    @property
    def hard_deadline(self) -> float:
        return self.started_at + self.limit_s - self.cfg.safety_margin_s

    def remaining(self) -> float:
        return self.hard_deadline - self.clock()

    def problems_left(self) -> int:
        return max(1, self.total_problems - self.done)

    def tokens_per_second(self) -> float | None:
        """Capacity: the best per-problem throughput seen.

        Not the average: a problem run with fewer samples runs at lower
        concurrency and so lower throughput, and planning from that would
        shrink the next problem's samples further, a spiral down to the minimum.
        """
        return self.best_tps or None

    def tokens_per_sample(self) -> float:
        if self.samples_run:
            return max(1.0, self.tokens / self.samples_run)
        return float(self.cfg.prior_tokens_per_sample)

    def plan(self) -> Plan:
        now = self.clock()
        remaining = self.hard_deadline - now
        left = self.problems_left()
        if remaining <= 0:
            return Plan(deadline=now, seconds=0.0, samples=0)
        fair = remaining / left
        # Never eat into the reserve the later problems are owed.
        cap = remaining - self.cfg.reserve_per_problem_s * (left - 1)
        if self.cfg.split == "reserve":  # AIMO-3's winners: all but the others' reserve, clamped
            seconds = min(max(cap, self.cfg.min_problem_s), self.cfg.max_problem_s, remaining)
        else:
            seconds = min(max(fair, self.cfg.min_problem_s), self.cfg.max_problem_s)
            seconds = max(min(seconds, cap), min(fair, remaining))
            seconds = min(seconds, remaining)
        samples = self.solver.samples
        tps = self.tokens_per_second()
        if tps is not None:
            affordable = math.floor(seconds * tps / self.tokens_per_sample())
            samples = max(self.solver.min_samples, min(self.solver.samples, affordable))
        return Plan(deadline=now + seconds, seconds=seconds, samples=samples)

    def record(self, tokens: int, seconds: float, samples: int) -> None:
        """Account one problem; `seconds` is generation time, engine start-up excluded."""
        self.done += 1
        self.tokens += tokens
        self.gen_seconds += seconds
        self.samples_run += samples
        if seconds > 0 and tokens > 0:
            self.best_tps = max(self.best_tps, tokens / seconds)

    def used_fraction(self) -> float:
        return min(1.0, (self.clock() - self.started_at) / self.limit_s)
