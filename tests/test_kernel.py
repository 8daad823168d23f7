"""The kernel's promise: every problem answered, in range, before the deadline."""

import json
import threading
import time

import polars as pl
import pytest

from aimokit.engine import GenResult
from aimokit.gateway import GatewayError, check_prediction, run_local_gateway
from aimokit.kernel import Kernel
from aimokit.serving import make_predict, serve
from aimokit.problems import load_problems

from fakes import tir_respond
from layout import AIME


def run_gateway(cfg, factory, problems, **kw):
    kernel = Kernel(cfg, total_problems=len(problems), engine_factory=factory, **kw)
    path = run_local_gateway(make_predict(kernel), problems, kernel.out_dir, cfg.competition, 0)
    kernel.close()
    return kernel, pl.read_parquet(path)


def first_then(first, then):
    """An engine factory: `first` on the first start, `then()` on every restart; and the engines made."""
    engines = []

    def factory(cfg):
        engines.append(first if not engines else then())
        return engines[-1]

    return factory, engines


def assert_valid(sub, problems, comp):
    assert sub.columns == ["id", "answer"]
    assert sorted(sub["id"].to_list()) == sorted(p.id for p in problems)
    assert sub["answer"].is_between(comp.answer_min, comp.answer_max).all()


def test_local_gateway_behaves_like_kaggle_evaluation(fast_cfg):
    seen = []

    def predict(id_, problem, answer=None):
        assert isinstance(id_, pl.Series) and id_.len() == 1 and isinstance(problem, pl.Series)
        seen.append(id_.item(0))
        return pl.DataFrame({"id": [id_.item(0)], "answer": [1]})

    problems = load_problems(AIME)
    path = run_local_gateway(predict, problems, fast_cfg.run.output_dir, fast_cfg.competition, shuffle_seed=1)
    assert seen != [p.id for p in problems] and sorted(seen) == sorted(p.id for p in problems)  # shuffled
    assert pl.read_parquet(path).height == 30
    with pytest.raises(GatewayError, match="outside"):
        check_prediction(pl.DataFrame({"id": ["a"], "answer": [5000]}), "a", fast_cfg.competition)
    with pytest.raises(GatewayError, match="id first"):
        check_prediction(pl.DataFrame({"answer": [5], "id": ["a"]}), "a", fast_cfg.competition)


def test_kernel_solves_through_the_gateway_and_records_every_problem(scripted, fast_cfg):
    problems = load_problems(AIME)[:3]
    kernel, sub = run_gateway(fast_cfg, lambda cfg: scripted(tir_respond), problems)
    assert_valid(sub, problems, fast_cfg.competition)
    assert sub["answer"].to_list() == [42, 42, 42]
    rows = [json.loads(l) for l in (kernel.out_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["gold"] is not None for r in rows)  # gold passed as on reference.csv
    assert json.loads((kernel.out_dir / "kernel_summary.json").read_text())["engine_starts"] == 1


def test_engine_that_raises_mid_run_still_gives_a_complete_submission(scripted, fast_cfg):
    problems = load_problems(AIME)[:4]
    starts = []

    def factory(cfg):  # the first engine dies on its 3rd call; the restart works
        starts.append(1)
        return scripted(lambda p, r: GenResult("\\boxed{7}", 3, "eos"), fail_after=2 if len(starts) == 1 else None)

    kernel, sub = run_gateway(fast_cfg.override({"solver.early_stop": []}), factory, problems)
    assert_valid(sub, problems, fast_cfg.competition)
    assert len(starts) == 2
    stopped = [r.stopped for r in kernel.results]
    assert "error" in stopped and stopped[-1] != "error"


def test_engine_that_cannot_start_still_answers_everything(fast_cfg):
    def factory(cfg):
        raise RuntimeError("CUDA out of memory")

    problems = load_problems(AIME)[:3]
    kernel, sub = run_gateway(fast_cfg, factory, problems)
    assert_valid(sub, problems, fast_cfg.competition)
    assert all(r.stopped == "error" for r in kernel.results)


def test_deadline_arriving_mid_problem_keeps_the_run_inside_the_limit(scripted, fast_cfg, clock):
    """Each sample takes 0.4 s of the kernel's clock: the 4 s limit holds, the last problems cut short."""
    cfg = fast_cfg.override({
        "competition.time_limit_s": 4.0, "budget.safety_margin_s": 0.5, "budget.min_problem_s": 0.2,
        "budget.reserve_per_problem_s": 0.1, "solver.early_stop": [],
    })
    problems = load_problems(AIME)[:6]
    t = clock()
    slow = lambda cfg: scripted(lambda p, r: GenResult("\\boxed{3}", 3, "eos"), step_s=0.4, clock=clock)
    kernel, sub = run_gateway(cfg, slow, problems, clock=clock)
    assert clock() - t <= 4.0 and kernel.summary()["elapsed_s"] <= 4.0
    assert_valid(sub, problems, cfg.competition)
    assert any(r.stopped == "deadline" for r in kernel.results)


def test_hung_solve_is_answered_from_its_votes_and_the_engine_replaced(scripted, fast_cfg):
    """A hang (a CUDA step that never returns): the votes so far answer, a new engine takes over."""
    release = threading.Event()

    class Hung(type(scripted(tir_respond))):
        def run(self, driver, deadline=None):
            new, _ = driver.poll()  # two samples vote 5, then the step never returns
            for key, _ in new[:2]:
                driver.finished(key, GenResult("\\boxed{5}", 3, "eos"))
            release.wait(30)

    factory, engines = first_then(Hung(tir_respond), lambda: scripted(tir_respond))
    cfg = fast_cfg.override({"competition.time_limit_s": 8.0, "budget.safety_margin_s": 0.5,
                             "budget.max_problem_s": 0.5, "solver.early_stop": []})
    problems = load_problems(AIME)[:3]
    try:
        kernel, sub = run_gateway(cfg, factory, problems, watchdog_grace_s=0.3)
    finally:
        release.set()
    assert_valid(sub, problems, cfg.competition)
    assert [r.stopped for r in kernel.results][0] == "hung"
    assert kernel.results[0].answer == 5 and kernel.results[0].votes == {5: 1.6}  # its votes so far (0.8 each: no code)
    assert [r.answer for r in kernel.results[1:]] == [42, 42]  # the replacement engine solved the rest
    assert len(engines) == 2 and any("hung" in e for e in kernel.events)


def test_no_restart_when_the_measured_start_does_not_fit_the_budget(fast_cfg, clock):
    """A crash late in the run: the restart is skipped because the measured start time would not fit."""
    starts = []

    def factory(cfg):
        starts.append(1)
        clock.advance(0.6)  # a slow start, measured by the kernel
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    cfg = fast_cfg.override({"competition.time_limit_s": 2.5, "budget.safety_margin_s": 0.1,
                             "budget.min_problem_s": 0.2, "budget.startup_estimate_s": 0.01})
    problems = load_problems(AIME)[:6]
    kernel, sub = run_gateway(cfg, factory, problems, clock=clock)
    assert_valid(sub, problems, cfg.competition)
    assert 1 <= len(starts) < 6  # tried again while the measured 0.6 s start fitted, not after
    assert all(r.stopped in ("error", "no-time") for r in kernel.results)


def test_a_hung_engine_start_is_abandoned_its_processes_killed_and_a_new_engine_takes_over(scripted, fast_cfg):
    """vLLM's start can block for good after a worker dies (seen at TP 2 on 4 x H200): past
    engine.start_timeout_s the processes the start spawned are killed, the problem gets its fallback in time, and
    a restart that fits the budget serves the rest."""
    import subprocess
    import sys

    spawned = []

    def factory(cfg):
        if not spawned:  # the first start: a core process that never reports ready, waited on as vLLM waits
            spawned.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
            spawned[0].wait(30)
            raise RuntimeError("Engine core initialization failed: the core process died")
        return scripted(tir_respond)

    cfg = fast_cfg.override({"competition.time_limit_s": 8.0, "budget.safety_margin_s": 0.5,
                             "budget.min_problem_s": 0.2, "budget.max_problem_s": 1.0,
                             "engine.start_timeout_s": 0.5, "solver.early_stop": []})
    problems = load_problems(AIME)[:3]
    kernel, sub = run_gateway(cfg, factory, problems)
    assert_valid(sub, problems, cfg.competition)
    assert kernel.results[0].stopped == "error" and kernel.results[0].answer == cfg.competition.fallback_answer
    assert spawned[0].returncode == -9  # the start's own process was killed, which ended the start's wait
    assert any("did not return in" in e and "killed the 1 processes" in e for e in kernel.events), kernel.events
    assert [r.answer for r in kernel.results[1:]] == [42, 42] and kernel.engine_starts == 2


def test_serve_uses_the_local_gateway_when_problems_are_given(scripted, fast_cfg, tmp_path):
    src = tmp_path / "p.csv"
    pl.DataFrame({"id": ["a", "b"], "problem": ["x?", "y?"]}).write_csv(src)
    cfg = fast_cfg.override({"run.problems": str(src)})
    kernel = Kernel(cfg, total_problems=2, engine_factory=lambda c: scripted(tir_respond))
    serve(cfg, kernel)
    sub = pl.read_parquet(kernel.out_dir / "submission.parquet")
    assert sorted(sub["id"].to_list()) == ["a", "b"] and sub["answer"].to_list() == [42, 42]


def test_missing_competition_module_names_the_fix(fast_cfg):
    cfg = fast_cfg.override({"competition.data_dir": "/nonexistent"})
    with pytest.raises(RuntimeError, match="attach the competition"):
        serve(cfg, Kernel(cfg, engine_factory=lambda c: None))


def test_engine_process_death_is_noticed_at_once_and_other_processes_do_not_count(scripted, fast_cfg):
    """vLLM's step blocks when its core dies: the kernel watches the engine's own processes, not others."""
    import os
    import signal
    import subprocess
    import sys

    core = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    release = threading.Event()

    class CoreDies(type(scripted(tir_respond))):
        def processes(self):
            return {core.pid}

        def run(self, driver, deadline=None):
            new, _ = driver.poll()
            driver.finished(new[0][0], GenResult("\\boxed{5}", 3, "eos"))
            subprocess.run([sys.executable, "-c", "pass"])  # a process of no concern to the kernel, ending
            os.kill(core.pid, signal.SIGKILL)  # the core dies; the step never returns
            release.wait(30)

    factory, engines = first_then(CoreDies(tir_respond), lambda: scripted(tir_respond))
    cfg = fast_cfg.override({"competition.time_limit_s": 30.0, "budget.max_problem_s": 20.0,
                             "solver.early_stop": []})
    problems = load_problems(AIME)[:2]
    t = time.monotonic()
    try:
        kernel, sub = run_gateway(cfg, factory, problems, watchdog_grace_s=20.0)
    finally:
        release.set()
        core.wait()
    assert time.monotonic() - t < 10  # noticed by polling, not at deadline + grace
    assert kernel.results[0].stopped == "error" and kernel.results[0].answer == 5
    assert kernel.results[1].answer == 42 and len(engines) == 2
    assert any("died while solving" in e for e in kernel.events)
