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
