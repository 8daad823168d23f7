import pytest

from aimokit.answers import extract_answer, is_correct, last_boxed, last_printed_integer
from aimokit.config import CompetitionConfig

AIMO2 = CompetitionConfig()
AIMO3 = CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)


pytestmark = pytest.mark.usefixtures("sympy_helper")


def test_boxed_wins_over_printed_and_latex_is_evaluated():
    assert extract_answer("so \\boxed{\\frac{84}{2}}", ["7"], AIMO2).answer == 42
    assert extract_answer("so \\boxed{1{,}042}", [], AIMO2).answer == 42  # mod 1000
    assert extract_answer("\\boxed{2^{10}}", [], AIMO3).answer == 1024  # no modulo on AIMO-3
    assert last_boxed("\\boxed{a} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"


def test_falls_back_to_last_printed_integer():
    ex = extract_answer("no box here", ["x = 3", "result: 17\n"], AIMO2)
    assert (ex.answer, ex.boxed) == (17, False)
    assert last_printed_integer(["a=1,234 and 5.0"]) == 5
    assert extract_answer("\\boxed{2.5}", [], AIMO2).answer is None  # not an integer, nothing printed


def test_out_of_range_is_no_answer():
    assert extract_answer("\\boxed{-3}", [], AIMO3).answer is None
    assert extract_answer("\\boxed{123456}", [], AIMO3).answer is None


def test_grading_uses_math_verify_equivalence():
    assert is_correct(42, 42) and not is_correct(41, 42)
    assert is_correct(None, 42) is False and is_correct(5, None) is None


