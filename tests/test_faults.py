"""Faults injected end to end: each run still answers every problem inside its limit, and the log says what happened.

The README's fault table points here. The repeated id and the malformed row from
the gateway are in test_interfaces.py, the hung engine in test_kernel.py.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import psutil
import pytest

from aimokit.engine import GenResult
from aimokit.gateway import write_submission
from aimokit.kernel import Kernel
from aimokit.problems import load_problems

from layout import AIME, ROOT


def _problems_csv(path, n):
    ps = load_problems(AIME)[:n]
    pl.DataFrame({"id": [p.id for p in ps], "problem": [p.problem for p in ps]}).write_csv(path)
    return ps


def _kernel_process(tmp_path, n, step_s, **extra):
    _problems_csv(tmp_path / "p.csv", n)
    args = {"config": {"competition.time_limit_s": 60.0, "competition.expected_problems": n,
                       "budget.safety_margin_s": 2.0, "budget.min_problem_s": 0.5, "budget.reserve_per_problem_s": 0.5,
                       "solver.samples": 2, "solver.min_samples": 1, "solver.max_rounds": 2,
                       "solver.max_tokens_per_round": 64, "solver.max_tokens_total": 256,
                       "sandbox.workers": 2, "run.problems": str(tmp_path / "p.csv"),
                       "run.output_dir": str(tmp_path / "out")},
            "step_s": step_s, **extra}
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "fault_kernel.py"), json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lines(path, n, proc, timeout=60):
    t = time.monotonic()
    while time.monotonic() - t < timeout and proc.poll() is None:
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines")


def test_sigterm_flushes_results_and_leaves_a_valid_submission(tmp_path):
    proc = _kernel_process(tmp_path, 10, step_s=0.3)
    out = tmp_path / "out"
    _wait_for_lines(out / "results.jsonl", 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "SIGTERM" in err
    rows = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    sub = pl.read_parquet(out / "submission.parquet")
    # What was answered, and nothing half-written. A problem whose predict was still returning when the
    # signal came may be in results.jsonl and not yet in the gateway's hands: at most one.
    assert 1 <= sub.height < 10 and set(sub["id"].to_list()) <= {r["id"] for r in rows}
    assert len(rows) - sub.height <= 1
    assert json.loads((out / "kernel_summary.json").read_text())["problems"] == len(rows)
    assert not [f for f in os.listdir(out) if f.startswith(".submission")]


def test_full_disk_never_leaves_a_partial_submission_and_the_run_goes_on(tmp_path):
    # Size the limit so that a two-row submission fits and a longer one does not.
    probe = tmp_path / "probe.parquet"
    write_submission([("60", 42), ("61", 42)], probe)
    proc = _kernel_process(tmp_path, 6, step_s=0.0, fsize=probe.stat().st_size + 4)  # parquet grows by a few bytes a row
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    out = tmp_path / "out"
    sub = pl.read_parquet(out / "submission.parquet")  # the last complete version, readable
    assert 1 <= sub.height < 6 and sub["answer"].to_list() == [42] * sub.height
    assert not [f for f in os.listdir(out) if f.startswith(".submission")]  # no temp file left behind
    assert "could not write" in err and "is intact" in err
    assert err.count("→ 42") == 6  # every problem was still answered to the gateway


def test_sandbox_process_killed_during_a_call_leaves_the_sample_going(scripted, fast_cfg, tmp_path):
    killed = []

    def respond(prompt, req):
        if "```output\n" not in prompt:  # the prompt itself mentions ```output blocks
            return GenResult("```python\nimport time\ntime.sleep(4)\nprint(1)\n```\n", 10, "stop", "\n```\n")
        out = prompt.rsplit("```output\n", 1)[1]
        return GenResult("it died, so \\boxed{7}" if "killed" in out else "\\boxed{1}", 5, "eos")

    def killer():  # kill the first sandbox process seen, mid-call
        me = psutil.Process()
        t = time.monotonic()
        while time.monotonic() - t < 10 and not killed:
            for c in me.children(recursive=True):
                try:
                    if "aimokit-sbx" in c.cwd():
                        c.kill()
                        killed.append(c.pid)
                        break
                except psutil.Error:
                    continue
            time.sleep(0.05)

    th = threading.Thread(target=killer)
    th.start()
    cfg = fast_cfg.override({"solver.samples": 1, "solver.min_samples": 1, "run.problems": ""})
    kernel = Kernel(cfg, total_problems=1, engine_factory=lambda c: scripted(respond))
    answer = kernel.predict("k", "What?")
    th.join()
    kernel.close()
    assert killed and answer == 7  # the model was told and carried on
    assert kernel.results[0].code_errors == 1 and kernel.results[0].stopped != "error"


@pytest.mark.slow
def test_engine_core_killed_mid_problem_is_replaced(tmp_path):
    """kill -9 of vLLM's engine-core process in the middle of a problem, with the real engine on CPU."""
    from aimokit.config import KernelConfig, to_toml
    from aimokit.models import embedded_default_model

    ps = _problems_csv(tmp_path / "p.csv", 4)
    cfg = KernelConfig.load(ROOT / "configs" / "dry-run.toml", {
        "engine.model": str(embedded_default_model()), "engine.max_model_len": 1024,
        "engine.vllm.gpu_memory_utilization": 0.2, "competition.time_limit_s": 300.0,
        "run.problems": str(tmp_path / "p.csv"), "run.output_dir": str(tmp_path / "out"),
        "solver.max_tokens_per_round": 96, "solver.max_tokens_total": 192, "budget.safety_margin_s": 10.0,
        "budget.startup_estimate_s": 60.0, "budget.min_problem_s": 10.0, "solver.early_stop": [],
    })
    (tmp_path / "kernel.toml").write_text(to_toml(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), AIMOKIT_SRC=str(ROOT / "src"),
               AIMOKIT_CONFIG=str(tmp_path / "kernel.toml"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "kernels" / "submission.py")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log_lines = []
    reader = threading.Thread(target=lambda: log_lines.extend(proc.stdout), daemon=True)
    reader.start()
    t0 = time.monotonic()
    _wait_for_lines(tmp_path / "out" / "results.jsonl", 1, proc, timeout=240)
    time.sleep(1.0)  # into the second problem
    cores = [c for c in psutil.Process(proc.pid).children(recursive=True)
             if "EngineCore" in " ".join(c.cmdline() + [c.name()])]
    assert cores, "no engine-core process found"
    for c in cores:
        c.kill()
    proc.wait(timeout=400)
    reader.join(5)
    log = "".join(log_lines)
    assert proc.returncode == 0, log[-3000:]
    sub = pl.read_parquet(tmp_path / "out" / "submission.parquet")
    assert sorted(sub["id"].to_list()) == sorted(p.id for p in ps)
    rows = [json.loads(l) for l in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "out" / "kernel_summary.json").read_text())
    assert summary["engine_starts"] == 2, log[-3000:]  # replaced, not given up
    assert [r["stopped"] for r in rows].count("error") == 1  # the problem it died in
    assert rows[-1]["stopped"] != "error" and rows[-1]["tokens"] > 0  # the new engine generated
    assert any("died while solving" in e for e in summary["events"])
    assert time.monotonic() - t0 < 300 + 60
