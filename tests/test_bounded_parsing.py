"""Parsing model text is bounded in time in any thread, and never starves the rest of the process.

Each hostile answer is extracted on a worker thread (where math-verify's own
SIGALRM timeouts do not work, as in the kernel's solve thread) while the main
thread must keep ticking on time.
"""

import threading
import time

import pytest

from aimokit import mathparse
from aimokit.answers import extract_answer, is_correct
from aimokit.config import CompetitionConfig

AIMO2 = CompetitionConfig()
AIMO3 = CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)

HOSTILE = {
    "tower of powers": ("\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}", None),
    "tower of nines": ("\\boxed{9^{9^{9^{9}}}}", None),
    "huge factorial": ("\\boxed{(10^{8})!}", None),
    "huge binomial": ("\\boxed{\\binom{10^{9}}{5 \\cdot 10^{8}}}", None),
    "1 MB of digits": ("\\boxed{" + "7" * 1_000_000 + "}", None),
    "deep brace nesting": ("\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}", None),
    "unbalanced braces": ("\\boxed{" + "{" * 1000 + "12", None),
    "unicode digits": ("\\boxed{٤٢}", 42),
    "fullwidth digits": ("\\boxed{４２}", 42),
    "a fraction (sympy's path)": ("\\boxed{\\frac{84}{2}}", 42),
}


pytestmark = pytest.mark.usefixtures("sympy_helper")  # the helper ready, as the Solver starts it


def _ticking(fn):
    """Run fn on a worker thread; return its result, its duration and the main thread's worst tick."""
    box = {}

    def work():
        t = time.monotonic()
        box["value"] = fn()
        box["seconds"] = time.monotonic() - t

    th = threading.Thread(target=work, daemon=True)
    th.start()
    worst, t0 = 0.0, time.monotonic()
    while th.is_alive() and time.monotonic() - t0 < 30:
        t = time.monotonic()
        time.sleep(0.05)
        worst = max(worst, time.monotonic() - t)
    assert not th.is_alive(), "extraction did not return"
    return box["value"], box["seconds"], worst


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_answer_returns_within_a_bound_and_the_main_thread_keeps_ticking(name):
    text, expected = HOSTILE[name]
    value, seconds, worst_tick = _ticking(lambda: extract_answer(text, [], AIMO3))
    assert value.answer == expected
    assert seconds < 3.0  # 1 s for the helper, plus starting its replacement after a kill
    assert worst_tick < 0.5  # a 50 ms sleep never took more than 0.5 s: the GIL was not held


def test_huge_printed_integers_are_no_answer_and_do_not_raise():
    ex = extract_answer("no box", ["9" * 5000, "1" * 100_000 + "x1"], AIMO2)
    assert ex.answer is None
    assert extract_answer("no box", ["result: 1,234.000"], AIMO2).answer == 234  # mod 1000


def test_the_grader_is_bounded_too():
    value, seconds, worst = _ticking(lambda: is_correct(42, "2^{2^{2^{2^{2^{2^{2}}}}}}"))
    assert value is False and seconds < 3.0 and worst < 0.5
    assert is_correct(42, "\\frac{84}{2}") is True and is_correct(42, 42) is True


def test_a_killed_helper_is_replaced_and_parsing_goes_on():
    worker = mathparse.ParseWorker(timeout_s=0.5)
    try:
        assert worker.start(wait=True)
        assert worker.call({"op": "int", "a": "(10^{8})!"}) is None  # killed on its deadline
        assert worker.kills == 1
        assert worker.start(wait=True)  # its replacement, already starting
        reply = worker.call({"op": "int", "a": "\\frac{84}{2}"})
        assert reply == {"ok": True, "value": "42"}
    finally:
        worker.close()


def test_guard_names_what_it_refuses():
    assert "characters" in mathparse.guard("1" * 3000)
    assert "nesting" in mathparse.guard("{" * 50 + "}" * 50)
    assert mathparse.guard("}{") == "unbalanced braces"
    assert mathparse.guard("\\frac{1}{2}") is None


def test_near_its_deadline_extraction_uses_only_the_time_left():
    """Past the deadline only the fast paths run: cut samples read at the deadline cost no sympy time."""
    text = "\\boxed{(10^{8})!}"
    _, seconds, _ = _ticking(lambda: extract_answer(text, [], AIMO3, deadline=time.monotonic() - 1))
    assert seconds < 0.05
    assert extract_answer("\\boxed{42}", [], AIMO3, deadline=time.monotonic() - 1).answer == 42
    value, seconds, _ = _ticking(lambda: extract_answer(text, [], AIMO3, deadline=time.monotonic() + 0.3))
    assert value.answer is None and seconds < 0.9
