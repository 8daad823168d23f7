import sys
import time
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aimokit.config import SolveConfig  # noqa: E402
from aimokit.engine import GenRequest, GenResult  # noqa: E402
from aimokit.problems import sample_problems  # noqa: E402

AIME = sample_problems()


class ScriptedEngine:
    """An Engine whose 'model' is a Python function of the prompt.

    It honours the same contract as VLLMEngine.run: requests come from
    driver.poll(), results go to driver.finished(), cancellations are obeyed,
    the deadline stops the loop and cut requests are reported as aborted.
    `step_s` simulates decode time per request; `fail_after` raises mid-run.
    """

    name = "scripted"

    def __init__(self, respond: Callable[[str, GenRequest], GenResult], step_s: float = 0.0,
                 fail_after: int | None = None):
        self.respond = respond
        self.step_s = step_s
        self.fail_after = fail_after
        self.calls = 0
        self.prompts: list[str] = []
        self.cancelled: list = []

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def chat_prompt(self, messages):
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    def run(self, driver, deadline=None):
        queue = []
        while True:
            new, dropped = driver.poll()
            queue.extend(new)
            gone = set(dropped)
            queue = [(k, r) for k, r in queue if k not in gone]
            self.cancelled.extend(dropped)
            if deadline is not None and time.monotonic() >= deadline:
                for k, _ in queue:
                    driver.finished(k, GenResult("", 0, "aborted"))
                return
            if not queue:
                if driver.busy():
                    driver.wait(0.01)
                    continue
                return
            key, req = queue.pop(0)
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise RuntimeError("simulated engine crash")
            if self.step_s:
                time.sleep(self.step_s)
            if deadline is not None and time.monotonic() >= deadline:
                driver.finished(key, GenResult("partial", 3, "aborted"))
                continue
            self.prompts.append(req.prompt)
            cancel = set(driver.finished(key, self.respond(req.prompt, req)))
            self.cancelled.extend(cancel)
            queue = [(k, r) for k, r in queue if k not in cancel]

    def close(self):
        pass


def tir_respond(prompt: str, req: GenRequest) -> GenResult:
    """First call writes code; once the output is in the context, box it."""
    if "```output\n" not in prompt:
        text = "Let me compute it.\n```python\nx = 6 * 7\nprint(x)\n```\n"
        return GenResult(text, 20, "stop", "\n```\n")
    out = prompt.rsplit("```output\n", 1)[1].split("\n```", 1)[0]
    return GenResult(f"The code printed {out}, so the answer is \\boxed{{{out}}}.", 12, "eos")


@pytest.fixture
def scripted():
    return ScriptedEngine


@pytest.fixture
def fast_cfg(tmp_path) -> SolveConfig:
    """A config for fake-engine runs: small limits, outputs in tmp_path."""
    return SolveConfig.from_dict({
        "competition": {"time_limit_s": 60.0, "expected_problems": 3},
        "sandbox": {"timeout_s": 5.0, "workers": 2},
        "solver": {"samples": 4, "min_samples": 1, "max_rounds": 2, "max_tokens_per_round": 64,
                   "max_tokens_total": 256, "early_stop": [[3, 3]]},
        "budget": {"safety_margin_s": 2.0, "startup_estimate_s": 1.0, "reserve_per_problem_s": 0.5,
                   "min_problem_s": 0.5, "max_problem_s": 20.0, "prior_tokens_per_sample": 50},
        "run": {"output_dir": str(tmp_path / "out")},
    })


COMPETITION_PACKAGE = ROOT / "tests" / "stand_ins" / "kaggle_evaluation"  # never on sys.path itself
_COMPETITION_MODULES = ("kaggle_evaluation", "aimo")


def lay_out_competition(data: Path, rows: list[dict], file: str = "test.csv") -> Path:
    """A competition folder as Kaggle mounts it: the `kaggle_evaluation` stand-in beside test.csv."""
    import shutil

    import polars as pl

    data.mkdir(parents=True, exist_ok=True)
    shutil.copytree(COMPETITION_PACKAGE, data / "kaggle_evaluation", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    pl.DataFrame(rows).write_csv(data / file)
    return data


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
            if name.split(".")[0] in _COMPETITION_MODULES:
                del _sys.modules[name]

    forget()
    yield lambda rows, file="test.csv": lay_out_competition(tmp_path / "data", rows, file)
    _sys.path[:] = path
    forget()
