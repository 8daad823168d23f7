"""The solver's own Python between engine steps (`Rollout.poll`), against the number of problems a streaming run has
seen, side by side in one run.

`evaluate` streams every problem of its set through one engine loop, and the loop polls the rollout once per
engine step. Its scans (which problems are finished, which need a GenSelect request) read `Rollout.open`, the
problems not handed out yet, so a step's cost follows the problems in flight; before 2026-12-04 they read every
problem seen so far: over a 2,000-problem run a poll took 60 us on average against 33 us now, 124 us against 31
with GenSelect on (this 2-core machine, docs/benchmarks.md), growing with the run (a vLLM step at 256 in flight is
~30 ms on an H200). The engine here is a stand-in that finishes one request per step at once, so what is timed
is the rollout's side only. CPU only.

    python benchmarks/rollout_poll.py [--problems 200,2000] [--concurrency 256] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import versions, write  # noqa: E402
from fakes import ScriptedEngine  # noqa: E402

from aimokit.config import KernelConfig  # noqa: E402
from aimokit.engine import GenResult  # noqa: E402
from aimokit.problems import Problem  # noqa: E402
from aimokit.rollout import Rollout  # noqa: E402
from aimokit.solver import Solver  # noqa: E402


def measure(n: int, concurrency: int, genselect: bool) -> dict:
    cfg = KernelConfig.from_dict({"solver": {"samples": 8, "early_stop": [], "max_rounds": 2,
                                             "max_tokens_per_round": 64, "max_tokens_total": 256,
                                             "genselect": genselect}, "sandbox": {"workers": 2}})
    engine = ScriptedEngine(lambda prompt, req: GenResult("so \\boxed{42}", 3, "eos"))
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=4096)
    spent = [0.0, 0]
    real_poll = Rollout.poll

    def timed_poll(self):
        t = time.perf_counter()
        try:
            return real_poll(self)
        finally:
            spent[0] += time.perf_counter() - t
            spent[1] += 1

    Rollout.poll = timed_poll
    try:
        got: list = []
        t = time.perf_counter()
        solver.solve_stream([Problem(f"q{i}", f"Question {i}: 6*7?", 42) for i in range(n)], got.append,
                            concurrency=concurrency)
        wall = time.perf_counter() - t
    finally:
        Rollout.poll = real_poll
        solver.close()
    assert len(got) == n
    return {"problems": n, "genselect": genselect, "polls": spent[1], "poll_s": round(spent[0], 3),
            "poll_us": round(spent[0] / spent[1] * 1e6, 1), "wall_s": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="200,2000")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--out", default="bench-out")
    a = ap.parse_args()
    report = {**versions(), "concurrency": a.concurrency, "samples": 8, "runs": []}
    for genselect in (False, True):
        for n in (int(x) for x in a.problems.split(",")):
            report["runs"].append(measure(n, a.concurrency, genselect))
    for r in report["runs"]:
        print(f"{r['problems']:>6} problems, genselect {str(r['genselect']):5}: {r['poll_us']:7.1f} us per poll "
              f"({r['polls']} polls)")
    write(Path(a.out), "rollout_poll", report)


if __name__ == "__main__":
    main()
