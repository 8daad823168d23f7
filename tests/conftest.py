"""Fixtures only: the stand-ins themselves live in tests/helpers (on the path through pyproject's pythonpath)."""

import pytest
from fakes import FakeClock, ScriptedEngine
from layout import COMPETITION_MODULES, lay_out_competition

from aimokit.config import KernelConfig


@pytest.fixture(scope="session", autouse=True)
def wheel_cache_dir(tmp_path_factory):
    """Builds under test keep downloaded wheels in a folder of the run's own, never the user's ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("wheel-cache")
    old = os.environ.get("AIMOKIT_WHEEL_CACHE")
    os.environ["AIMOKIT_WHEEL_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("AIMOKIT_WHEEL_CACHE", None)
    else:
        os.environ["AIMOKIT_WHEEL_CACHE"] = old


@pytest.fixture
def scripted():
    return ScriptedEngine


@pytest.fixture
def clock():
    """A clock that moves only when the test (or a ScriptedEngine's step_s) moves it."""
    return FakeClock()


@pytest.fixture
def fast_cfg(tmp_path) -> KernelConfig:
    """A config for fake-engine runs: small limits, outputs in tmp_path."""
    return KernelConfig.from_dict({
        "competition": {"time_limit_s": 60.0, "expected_problems": 3},
        "sandbox": {"timeout_s": 5.0, "workers": 2},
        "solver": {"samples": 4, "min_samples": 1, "max_rounds": 2, "max_tokens_per_round": 64,
                   "max_tokens_total": 256, "early_stop": [[3, 3]]},
        "budget": {"safety_margin_s": 2.0, "startup_estimate_s": 1.0, "reserve_per_problem_s": 0.5,
                   "min_problem_s": 0.5, "max_problem_s": 20.0, "prior_tokens_per_sample": 50},
        "run": {"output_dir": str(tmp_path / "out")},
    })


@pytest.fixture
def competition(tmp_path, monkeypatch):
    """Lay out a competition folder; the working directory (where the gateway writes) is tmp_path/working.

    The kernel puts the data folder on sys.path; afterwards the stand-in modules are forgotten again.
    """
    import sys as _sys

    path = list(_sys.path)
    working = tmp_path / "working"
    working.mkdir()
    monkeypatch.chdir(working)
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)

    def forget():
        for name in list(_sys.modules):
            if name.split(".")[0] in COMPETITION_MODULES:
                del _sys.modules[name]

    forget()
    yield lambda rows, file="test.csv": lay_out_competition(tmp_path / "data", rows, file)
    _sys.path[:] = path
    forget()


@pytest.fixture(scope="module")
def sympy_helper():
    """The math parser's sympy helper started and ready, as the Solver starts it when it is built (without
    waiting), so no answer waits on sympy's import. Tests that call the parser directly use it: in a fresh venv
    the first LaTeX answer otherwise meets a helper still importing, and the bound gives it no answer, which is
    the designed behaviour (test_bounded_parsing), not what those tests check."""
    from aimokit import mathparse

    assert mathparse.shared_worker().start(wait=True)


@pytest.fixture(scope="session")
def default_model():
    from aimokit.models import embedded_default_model

    return embedded_default_model()


@pytest.fixture(scope="session")
def lora_adapter(default_model, tmp_path_factory):
    """A LoRA with random (non-zero) B, so it visibly changes generation."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(default_model, dtype=torch.bfloat16)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(out)
    return out
