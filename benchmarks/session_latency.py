"""Tool-call latency: a persistent session against a fresh process per block, side by side in one run.

A sample's k-th block, as the solver runs it: the fresh-process sandbox starts an
interpreter and re-runs the k-1 earlier clean blocks (silenced) first; a session
runs the block alone in the interpreter that ran the others. Prints p50 / p99 per
block position and overall, in milliseconds, and their ratio. CPU only.

    python benchmarks/session_latency.py [--samples 20] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aimokit.config import SandboxConfig  # noqa: E402
from aimokit.sandbox import run_code  # noqa: E402
from aimokit.sessions import SessionPool  # noqa: E402

BLOCKS = [  # a typical tool-integrated solution: sympy set-up, a search, a check, an answer
    "import sympy as sp\nx, y = sp.symbols('x y')\nsol = sp.solve([x + y - 10, x - y - 4], [x, y])\nprint(sol)",
    "count = sum(1 for a in range(1, 200) for b in range(a, 200) if (a * a + b * b) % 7 == 0)\nprint(count)",
    "from math import gcd\nprint(sum(gcd(a, 360) for a in range(1, 1000)) % 1000)",
    "print(int(sol[x]) * int(sol[y]) + count % 10)",
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=len(BLOCKS))
    a = ap.parse_args()
    cfg = SandboxConfig(timeout_s=10.0)
    blocks = BLOCKS[: a.rounds]
    fresh: dict[int, list[float]] = {k: [] for k in range(len(blocks))}
    sess: dict[int, list[float]] = {k: [] for k in range(len(blocks))}
    for _ in range(a.samples):
        for k, code in enumerate(blocks):  # the fresh-process path, with the cumulative prelude
            t = time.perf_counter()
            r = run_code(code, cfg, prelude="\n\n".join(blocks[:k]))
            fresh[k].append(1000 * (time.perf_counter() - t))
            assert r.ok, r.output
        pool = SessionPool(cfg, spare=1)  # as in the solver: a spare started (and sympy imported) ahead
        pool.warm()
        for k, code in enumerate(blocks):
            t = time.perf_counter()
            r = pool.run("sample", code)
            sess[k].append(1000 * (time.perf_counter() - t))
            assert r.ok, r.output
        pool.close()
    rows = []
    for k in range(len(blocks)):
        rows.append({"block": k + 1, "fresh_p50_ms": round(pct(fresh[k], 0.5), 1), "fresh_p99_ms": round(pct(fresh[k], 0.99), 1),
                     "session_p50_ms": round(pct(sess[k], 0.5), 1), "session_p99_ms": round(pct(sess[k], 0.99), 1)})
    allf, alls = sum(fresh.values(), []), sum(sess.values(), [])
    total = {"calls": len(allf), "fresh_p50_ms": round(pct(allf, 0.5), 1), "fresh_p99_ms": round(pct(allf, 0.99), 1),
             "session_p50_ms": round(pct(alls, 0.5), 1), "session_p99_ms": round(pct(alls, 0.99), 1),
             "fresh_mean_ms": round(statistics.mean(allf), 1), "session_mean_ms": round(statistics.mean(alls), 1)}
    total["mean_ratio_fresh_over_session"] = round(total["fresh_mean_ms"] / total["session_mean_ms"], 1)
    for r in rows:
        print(json.dumps(r))
    print("TOTAL " + json.dumps(total))


if __name__ == "__main__":
    main()
