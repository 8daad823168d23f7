from aimokit.budget import TimeBudget
from aimokit.config import BudgetConfig, SamplingConfig


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def make(limit=3600.0, n=50, **kw):
    clock = Clock()
    cfg = BudgetConfig(**{"safety_margin_s": 60, "reserve_per_problem_s": 20, "min_problem_s": 10,
                          "max_problem_s": 300, **kw})
    return TimeBudget(cfg, limit, n, SamplingConfig(samples=16, min_samples=2), started_at=0.0, clock=clock), clock


def test_every_problem_gets_time_and_the_total_stays_inside_the_limit():
    b, clock = make()
    clock.t = 200  # engine start-up comes out of the same limit
    for _ in range(50):
        plan = b.plan()
        assert plan.seconds > 0 and plan.samples >= 2
        clock.t = plan.deadline  # the worst case: every problem uses all it was given
        b.record(tokens=1000, seconds=plan.seconds, samples=plan.samples)
    assert clock.t <= 3600 - 60


def test_time_saved_early_flows_to_later_problems():
    b, clock = make()
    first = b.plan().seconds
    clock.t = 5
    b.record(100, 5, 16)
    assert b.plan().seconds > first


def test_samples_replanned_from_measured_speed():
    b, clock = make()
    assert b.plan().samples == 16  # nothing measured yet
    b.record(tokens=2000, seconds=100, samples=4)  # 20 tok/s, 500 tok/sample
    clock.t = 100
    plan = b.plan()
    assert plan.samples == max(2, min(16, int(plan.seconds * 20 / 500)))
    assert plan.samples < 16


def test_no_time_left_means_no_samples():
    b, clock = make()
    clock.t = 3600
    plan = b.plan()
    assert plan.samples == 0 and plan.seconds == 0


def test_fewer_samples_do_not_spiral_down_to_the_minimum():
    b, clock = make()
    b.record(tokens=8000, seconds=100, samples=16)  # 80 tok/s at full concurrency
    b.record(tokens=1000, seconds=100, samples=2)  # 10 tok/s at low concurrency
    assert b.tokens_per_second() == 80


def test_the_winners_split_gives_all_but_the_others_reserve_clamped():
    """AIMO-3's winners: time left - 300 s x problems left after this one, clamped to 300-900 s."""
    b, clock = make(limit=5 * 3600.0, n=50, safety_margin_s=0, reserve_per_problem_s=300, min_problem_s=300,
                    max_problem_s=900, split="reserve")
    assert b.plan().seconds == 900  # 18000 - 49 x 300 = 3300, clamped to 900
    clock.t = 18000 - 10 * 300 - 500  # 3500 s left for 11 problems: 3500 - 10 x 300 = 500
    b.done = 39
    assert b.plan().seconds == 500
    clock.t = 18000 - 200  # the minimum never exceeds what is left
    b.done = 49
    assert b.plan().seconds == 200
    share, _ = make(limit=5 * 3600.0, n=50, safety_margin_s=0, reserve_per_problem_s=300, min_problem_s=300,
                    max_problem_s=900)
    assert share.plan().seconds == 360  # the default: 18000 / 50


def test_every_problem_stays_inside_the_limit_under_the_winners_split():
    b, clock = make(split="reserve")
    clock.t = 200
    for _ in range(50):
        plan = b.plan()
        assert plan.seconds > 0
        clock.t = plan.deadline
        b.record(tokens=1000, seconds=plan.seconds, samples=plan.samples)
    assert clock.t <= 3600 - 60
