"""What the kernel-enforced layers (seccomp, Landlock) cost per tool call, side by side in one run.

Each block runs in both sandboxes the solver uses: a fresh process per block (the layers are applied at
every start) and a persistent session (applied once, at the session's start). Layers on and off alternate
call by call, so load on the machine falls on both alike. Prints the median and p90 per call in
milliseconds and the on/off ratio (the goal: within 10%). CPU only.

    python benchmarks/sandbox_layers.py [--calls 30]
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
from aimokit.sandbox import probe_layers, run_code  # noqa: E402
from aimokit.sessions import Session  # noqa: E402

BLOCK = "import sympy as sp\nx = sp.symbols('x')\nprint(sp.factor(x**4 - 1), sum(i * i for i in range(10**5)) % 97)"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    cfgs = {"on": SandboxConfig(timeout_s=30.0), "off": SandboxConfig(timeout_s=30.0, kernel_layers=False,
                                                                        missing_layer="run")}
    layers = probe_layers(cfgs["on"])
    fresh: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(args.calls):
        for name, cfg in cfgs.items():
            t = time.perf_counter()
            res = run_code(BLOCK, cfg)
            fresh[name].append(1000 * (time.perf_counter() - t))
            assert res.ok, res.output
    sessions = {name: Session(cfg) for name, cfg in cfgs.items()}
    warm: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for name, s in sessions.items():
            assert s.run("import sympy as sp").ok
        for _ in range(args.calls):
            for name, s in sessions.items():
                t = time.perf_counter()
                res = s.run(BLOCK.split("\n", 1)[1])
                warm[name].append(1000 * (time.perf_counter() - t))
                assert res.ok, res.output
    finally:
        for s in sessions.values():
            s.close()
    out = {"layers": layers, "calls": args.calls}
    for label, series in (("fresh process", fresh), ("session", warm)):
        row = {k: {"p50_ms": round(statistics.median(v), 1), "p90_ms": round(pct(v, 0.9), 1)} for k, v in series.items()}
        row["ratio_p50"] = round(row["on"]["p50_ms"] / row["off"]["p50_ms"], 3)
        out[label] = row
        print(f"{label:14s} layers on p50 {row['on']['p50_ms']:7.1f} ms (p90 {row['on']['p90_ms']:.1f})  "
              f"off p50 {row['off']['p50_ms']:7.1f} ms (p90 {row['off']['p90_ms']:.1f})  on/off {row['ratio_p50']:.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
