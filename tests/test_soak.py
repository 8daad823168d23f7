"""The soak: 50 problems under a model that writes hostile output, through the real kernel path.

Everything but the model is real: the local gateway (plain `predict`, server
thread, atomic submission), the kernel and its budget, the solver loop, the
sandbox running the code the model writes, answer extraction and voting.
Every problem must be answered, in range, inside the limit.
"""

import json
import time

import polars as pl
import pytest

from aimokit.engine import GenResult
from aimokit.kernel import Kernel
from aimokit.serving import serve

pytestmark = pytest.mark.slow

TOWER = "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}"
HOSTILE = [
    # huge outputs
    lambda: GenResult("x" * 2_000_000, 64, "length"),
    lambda: GenResult("\\boxed{" + "7" * 1_000_000 + "}", 64, "eos"),
    # endless code: loops, floods, forks, secrets, native escapes
    lambda: GenResult("```python\nwhile True:\n    pass\n```\n", 16, "stop", "\n```\n"),
    lambda: GenResult("```python\nprint('9' * 10**8)\n```\n", 16, "stop", "\n```\n"),
    lambda: GenResult("```python\nimport os\nos.fork()\nprint(open('/etc/passwd').read())\n```\n", 16, "stop", "\n```\n"),
    lambda: GenResult("```python\nimport ctypes\nctypes.CDLL(None).system(b'id')\n```\n", 16, "stop", "\n```\n"),
    lambda: GenResult("```python\n" * 3000, 64, "length"),
    lambda: GenResult("```python\nx = [[]]\nfor _ in range(10**7): x = [x]\nprint(x)\n```\n", 16, "stop", "\n```\n"),
    # nested and unbalanced boxes, towers, factorials
    lambda: GenResult("\\boxed{\\boxed{\\boxed{12}}}", 8, "eos"),
    lambda: GenResult("\\boxed{" + "{" * 5000 + "12", 64, "eos"),
    lambda: GenResult("\\boxed{" + "{" * 100 + "5" + "}" * 100 + "}", 64, "eos"),
    lambda: GenResult(TOWER, 8, "eos"),
    lambda: GenResult("\\boxed{(10^{8})!}", 8, "eos"),
    lambda: GenResult("\\boxed{\\binom{10^{9}}{5 \\cdot 10^{8}}}", 8, "eos"),
    # tool calls to tools that do not exist, in other protocols' syntax
    lambda: GenResult('<tool_call>{"name": "bash", "arguments": {"cmd": "rm -rf /"}}</tool_call>', 16, "eos"),
    lambda: GenResult("<|start|>assistant to=functions.shell<|channel|>commentary<|message|>{}<|call|>", 16, "eos"),
    # answers out of range, odd characters
    lambda: GenResult("\\boxed{-5}", 4, "eos"),
    lambda: GenResult("\\boxed{10^{12}}", 4, "eos"),
    lambda: GenResult("\\boxed{٤٢}", 4, "eos"),
    lambda: GenResult("\x00\x00\ud800 \\boxed{7}", 4, "eos"),
    lambda: GenResult("", 0, "eos"),
]


def hostile_model():
    """A scripted model that answers every request with the next hostile output; `calls` counts them."""
    calls = []

    def respond(prompt, req):
        calls.append(1)
        return HOSTILE[len(calls) % len(HOSTILE)]()

    return respond, calls


def test_fifty_problems_of_hostile_output_are_all_answered_inside_the_limit(scripted, fast_cfg, tmp_path):
    n, limit = 50, 150.0
    problems = tmp_path / "p.csv"
    pl.DataFrame({"id": [f"h{i}" for i in range(n)], "problem": [f"Problem {i}?" for i in range(n)]}).write_csv(problems)
    cfg = fast_cfg.override({
        "competition.time_limit_s": limit, "competition.expected_problems": n, "budget.safety_margin_s": 5.0,
        "budget.max_problem_s": 10.0, "sandbox.timeout_s": 1.0, "sandbox.workers": 2,
        "solver.samples": 3, "solver.max_rounds": 3, "solver.early_stop": [], "run.problems": str(problems),
    })
    t = time.monotonic()
    respond, calls = hostile_model()
    kernel = serve(cfg, Kernel(cfg, total_problems=n, engine_factory=lambda c: scripted(respond), started_at=t))
    wall = time.monotonic() - t
    sub = pl.read_parquet(kernel.out_dir / "submission.parquet")
    assert wall < limit
    assert sub.height == n and sorted(sub["id"].to_list()) == sorted(f"h{i}" for i in range(n))
    assert sub["answer"].is_between(0, 999).all()
    rows = [json.loads(l) for l in (kernel.out_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == n and kernel.engine_starts == 1  # the engine was never lost
    assert len(calls) >= n * 3  # every problem really ran its samples through the hostile model
    assert not any(r["stopped"] in ("error", "hung") for r in rows)
    answers = {r["answer"] for r in rows}
    # only what a hostile output plainly said (-5 is 995 mod 1000), or the fallback
    assert answers <= {0, 5, 7, 12, 42, 995}


CALL = "<|channel|>analysis to=python code<|message|>"
HARMONY_HOSTILE = [
    # what gpt-oss users report most: cut or malformed headers, missing tokens, repeated identical calls
    lambda: GenResult("<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>fin", 16, "length"),
    lambda: GenResult("<|channel|>final \\boxed{12}<|return|>", 8, "eos"),  # no <|message|>
    lambda: GenResult(CALL + "print(7)<|return|>", 8, "eos"),  # a call ended as a return
    lambda: GenResult("<|channel|>final <|constrain|>json<|message|>\\boxed{42}<|return|>", 8, "eos"),
    lambda: GenResult("<|channel|>final<|message|>\\boxed{1" + "2" * 100_000, 64, "length"),  # cut mid-box
    lambda: GenResult(CALL + "import os\nprint(os.listdir('/'))<|call|>", 16, "stop", "<|call|>"),
    lambda: GenResult(CALL + "while True: pass<|call|>", 16, "stop", "<|call|>"),
    lambda: GenResult(CALL + "print('same')<|call|>", 16, "stop", "<|call|>"),  # the same call, again and again
    lambda: GenResult("<|start|>" + "assistant " * 50_000 + "<|message|>x", 64, "length"),  # header flood
    lambda: GenResult("<|end|><|call|><|return|><|message|>" * 10_000, 64, "eos"),  # stray tokens
    lambda: GenResult("<|start|>robot to=functions.shell<|channel|>commentary<|message|>{}<|call|>", 16, "stop",
                      "<|call|>"),
    lambda: GenResult("<|channel|>analysis<|message|>\\boxed{999}<|end|>", 8, "eos"),  # a guess in analysis
    lambda: GenResult("<|channel|>commentary to=python<|message|>print(5)<|call|>", 8, "stop", "<|call|>"),
    lambda: GenResult("<|channel|>final<|message|>\\boxed{٤٢}\x00\ud800<|return|>", 8, "eos"),
]


def test_harmony_hostile_output_is_read_as_far_as_it_goes_and_every_problem_answered(scripted, fast_cfg, tmp_path):
    n, limit = 20, 120.0
    problems = tmp_path / "p.csv"
    pl.DataFrame({"id": [f"g{i}" for i in range(n)], "problem": [f"Problem {i}?" for i in range(n)]}).write_csv(problems)
    cfg = fast_cfg.override({
        "competition.time_limit_s": limit, "competition.expected_problems": n, "budget.safety_margin_s": 5.0,
        "budget.max_problem_s": 10.0, "sandbox.timeout_s": 1.0, "sandbox.workers": 2, "sandbox.sessions": True,
        "solver.protocol": "harmony", "solver.samples": 3, "solver.max_rounds": 3, "solver.early_stop": [],
        "solver.stop_at_answer": True, "run.problems": str(problems),
    })
    calls = []

    def respond(prompt, req):
        calls.append(1)
        return HARMONY_HOSTILE[len(calls) % len(HARMONY_HOSTILE)]()

    t = time.monotonic()
    kernel = serve(cfg, Kernel(cfg, total_problems=n, engine_factory=lambda c: scripted(respond), started_at=t))
    assert time.monotonic() - t < limit
    sub = pl.read_parquet(kernel.out_dir / "submission.parquet")
    assert sub.height == n and sub["answer"].is_between(0, 999).all()
    rows = [json.loads(l) for l in (kernel.out_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == n and kernel.engine_starts == 1 and len(calls) >= n * 3
    assert not any(r["stopped"] in ("error", "hung") for r in rows)
    # final-channel boxes, printed integers, or the fallback: never the analysis channel's 999
    assert {r["answer"] for r in rows} <= {0, 1, 5, 7, 12, 42} and 999 not in sub["answer"].to_list()
    summary = json.loads((kernel.out_dir / "kernel_summary.json").read_text())["protocol"]
    assert summary["renderer"] == "openai_harmony" and summary["malformed_read"] > 0  # counted, not thrown away
    layers = json.loads((kernel.out_dir / "kernel_summary.json").read_text())["sandbox_layers"]
    assert layers["seccomp"] == "on" and layers["landlock"].startswith("abi")
