"""Persistent Python sessions: state kept, timeouts interrupted then replaced, deaths survived, resets clean.

(Every sandbox attack also runs inside a session: test_sandbox.py's `run` fixture.)
"""

import os
import signal

import pytest
from fakes import ScriptedEngine

from aimokit.config import SandboxConfig
from aimokit.engine import GenResult
from aimokit.problems import Problem
from aimokit.sessions import Session, SessionPool
from aimokit.solver import Solver

CFG = SandboxConfig(timeout_s=2.0, memory_mb=512, max_output_chars=300, max_output_bytes=64 * 1024)


@pytest.fixture
def session():
    s = Session(CFG)
    yield s
    s.close()


def test_names_persist_between_calls_and_the_last_expression_shows(session):
    assert session.run("import sympy as sp\nx = sp.Rational(1, 3)").ok
    r = session.run("y = x * 3\ny")
    assert r.ok and r.output == "1"
    assert session.run("print(y + 41)").output == "42"


def test_a_timeout_interrupts_and_keeps_the_names(session):
    session.run("kept = 7")
    r = session.run("import time\nwhile True:\n    time.sleep(0.05)")
    assert r.timed_out and not r.ok and "KeyboardInterrupt" in r.output
    assert "timed out" in r.for_model()
    assert session.run("kept").output == "7"


def test_a_call_that_ignores_the_interrupt_is_killed_and_a_fresh_session_takes_over(session):
    session.run("kept = 7")
    old = session.proc.pid
    r = session.run("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
    assert r.timed_out and "names are gone" in r.output
    assert session.proc.pid != old
    r = session.run("kept")
    assert not r.ok and "NameError" in r.output
    assert session.run("print(1)").output == "1"


def test_a_killed_session_leaves_the_caller_going_with_a_message(session):
    session.run("kept = 7")
    os.kill(session.proc.pid, signal.SIGKILL)
    session.proc.wait()
    r = session.run("print(kept)")
    assert not r.ok and "SessionRestarted" in r.output and "NameError" in r.output
    assert session.run("print(2)").output == "2"


def test_an_output_flood_replaces_the_session(session):
    r = session.run("while True:\n    print('x' * 1000)")
    assert r.truncated and not r.ok
    assert session.run("print(3)").output == "3"


def test_the_pool_hands_each_owner_its_own_session_and_a_reset_clears_them():
    pool = SessionPool(CFG, spare=2)
    try:
        pool.warm()
        assert len(pool.spare) == 2 and pool.started == 2
        pool.run("a", "v = 'a'")
        pool.run("b", "v = 'b'")
        assert pool.run("a", "v").output == "'a'" and pool.run("b", "v").output == "'b'"
        assert pool.started == 2  # both came from the spares
        pool.reset()
        assert pool.run("a", "v").output.endswith("NameError: name 'v' is not defined")
    finally:
        pool.close()


def test_spares_warmed_by_several_threads_reach_the_target_exactly():
    pool = SessionPool(CFG, spare=4)
    try:
        pool.warm(threads=3)
        assert len(pool.spare) == 4 and pool.started == 4 and pool.starting == 0
        assert len({s.proc.pid for s in pool.spare}) == 4 and all(s.alive() for s in pool.spare)
    finally:
        pool.close()


def _two_rounds(cfg):
    """Round 1 stamps the time; round 2, 0.3 s of decoding later, answers 42 only if the stamp is round 1's own
    (a re-run of round 1 before round 2, as the fresh-process sandbox does, stamps it anew)."""

    def respond(prompt, req):
        rounds = prompt.count("```output\n")
        if rounds == 0:
            return GenResult("```python\nimport time\nt = time.monotonic()\nn = 6\n```\n", 9, "stop", "\n```\n")
        if rounds == 1:
            return GenResult("```python\nprint(n * 7 if time.monotonic() - t > 0.25 else 1)\n```\n", 9, "stop",
                             "\n```\n")
        out = prompt.rsplit("```output\n", 1)[1].split("\n```", 1)[0]
        return GenResult(f"\\boxed{{{out}}}", 3, "eos")

    solver = Solver(ScriptedEngine(respond, step_s=0.3), cfg.solver, cfg.sandbox, cfg.competition)
    return solver


def test_the_solver_runs_each_sample_in_its_own_session_without_rerunning_earlier_blocks(fast_cfg):
    cfg = fast_cfg.override({"sandbox.sessions": True, "solver.max_rounds": 3})
    solver = _two_rounds(cfg)
    try:
        res = solver.solve([Problem("p", "q", 42)], samples=2)[0]
        assert res.answer == 42 and res.code_runs == 4 and res.code_errors == 0
        assert solver.sessions.owned == {}  # reset after the problem
        for closer in solver.sessions.closers:  # the old sessions were killed on a thread of their own
            closer.join(timeout=10)
        assert all(not t.is_alive() for t in solver.sessions.closers)
        assert solver.solve([Problem("p2", "q", 42)], samples=1)[0].answer == 42
    finally:
        solver.close()
    assert solver.sessions.spare == []
    solver = _two_rounds(fast_cfg.override({"sandbox.sessions": False, "solver.max_rounds": 3}))
    try:  # the fresh-process sandbox re-runs round 1 first: the stamp is new, the answer 1
        assert solver.solve([Problem("p", "q", 42)], samples=1)[0].answer == 1
    finally:
        solver.close()


def test_a_pool_closed_while_it_warms_leaves_no_session_behind():
    import threading

    psutil = pytest.importorskip("psutil")

    def sessions_alive():
        out = []
        for c in psutil.Process().children(recursive=True):
            try:
                if "aimokit-session-" in c.cwd():
                    out.append(c)
            except psutil.Error:
                continue
        return out

    pool = SessionPool(CFG, spare=3)
    th = threading.Thread(target=pool.warm)
    th.start()
    pool.close()
    th.join(30)
    assert not th.is_alive() and pool.spare == [] and pool.owned == {}
    psutil.wait_procs(sessions_alive(), timeout=5)
    assert sessions_alive() == []


def test_sessions_and_the_sandbox_work_past_descriptor_1023():
    """A pool of hundreds of sessions (two pipes each) pushes descriptors past 1023, where select() refuses
    them (seen on the GPU at 256 samples in flight); the pool raises the soft limit and waits with poll()."""
    import resource

    from aimokit.sandbox import run_code

    SessionPool(CFG, 0).close()  # raises the soft descriptor limit as a big pool would
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"the hard descriptor limit here is {soft}")
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        s = Session(CFG)
        try:
            assert s.proc.stdout.fileno() > 1023
            assert s.run("print(6 * 7)").output.strip() == "42"
        finally:
            s.close()
        r = run_code("print(6 * 7)", CFG)
        assert r.ok and r.output.strip() == "42"
    finally:
        for fd in fillers:
            os.close(fd)
