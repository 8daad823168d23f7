"""The competition interfaces, with stand-ins for the modules that ship with the competition data."""

import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from aimokit.kernel import Kernel, serve

from conftest import ROOT, tir_respond

KAGGLE_EVALUATION = '''
import os
import polars as pl

class AIMO2InferenceServer:
    """Like the real one: predict(*row) with one-element Series, a one-row frame back."""
    def __init__(self, predict):
        self.predict = predict

    def _loop(self, test_csv):
        df = pl.read_csv(test_csv).sample(fraction=1.0, shuffle=True, seed=0)
        rows = []
        for row in df.iter_rows(named=True):
            out = self.predict(pl.Series("id", [row["id"]]), pl.Series("problem", [row["problem"]]))
            assert out.columns == ["id", "answer"] and out.height == 1
            rows.append(out)
        pl.concat(rows).write_parquet(os.path.join(os.environ["FAKE_OUT"], "submission.parquet"))

    def serve(self):
        self._loop(os.path.join(os.environ["FAKE_DATA"], "test.csv"))
        open(os.path.join(os.environ["FAKE_OUT"], "served"), "w").close()

    def run_local_gateway(self, paths):
        self._loop(paths[0])
'''

AIMO = '''
import pandas as pd

class _Env:
    def __init__(self):
        self.answers = {}

    def iter_test(self):
        for i, p in [("a1", "What is 6*7?"), ("a2", "Again 6*7?")]:
            yield pd.DataFrame({"id": [i], "problem": [p]}), pd.DataFrame({"id": [i], "answer": [0]})

    def predict(self, sub):
        self.answers[sub["id"].iloc[0]] = int(sub["answer"].iloc[0])
        ENVS.append(self)

ENVS = []

def make_env():
    return _Env()
'''


_FAKE_MODULES = ["kaggle_evaluation", "kaggle_evaluation.aimo_2_inference_server", "aimo"]


@pytest.fixture(autouse=True)
def _forget_fake_modules():
    """The kernel puts the data dir on sys.path; later tests must not see the fakes."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in _FAKE_MODULES:
        sys.modules.pop(name, None)


def _data_dir(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "kaggle_evaluation").mkdir(parents=True)
    (data / "kaggle_evaluation" / "__init__.py").write_text("")
    (data / "kaggle_evaluation" / "aimo_2_inference_server.py").write_text(KAGGLE_EVALUATION)
    (data / "aimo.py").write_text(AIMO)
    pl.DataFrame({"id": ["x", "y", "z"], "problem": ["p1", "p2", "p3"]}).write_csv(data / "test.csv")
    monkeypatch.setenv("FAKE_DATA", str(data))
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    for name in _FAKE_MODULES:
        sys.modules.pop(name, None)
    return data


def test_kaggle_evaluation_local_gateway_and_rerun(scripted, fast_cfg, tmp_path, monkeypatch):
    data = _data_dir(tmp_path, monkeypatch)
    cfg = fast_cfg.override({"competition.data_dir": str(data)})
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    serve(cfg, Kernel(cfg, engine_factory=lambda c: scripted(tir_respond)))
    assert pl.read_parquet(tmp_path / "submission.parquet")["answer"].to_list() == [42, 42, 42]
    assert not (tmp_path / "served").exists()
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    serve(cfg, Kernel(cfg, engine_factory=lambda c: scripted(tir_respond)))
    assert (tmp_path / "served").exists()


def test_aimo1_environment(scripted, fast_cfg, tmp_path, monkeypatch):
    data = _data_dir(tmp_path, monkeypatch)
    cfg = fast_cfg.override({"competition.data_dir": str(data), "competition.interface": "aimo"})
    serve(cfg, Kernel(cfg, engine_factory=lambda c: scripted(tir_respond)))
    import aimo

    assert aimo.ENVS[-1].answers == {"a1": 42, "a2": 42}


def test_dry_run_cli_rejects_a_bad_problems_file_before_any_model_work(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question\n1,hi\n")
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "dry-run", "--problems", str(bad),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "missing column(s) problem" in proc.stderr
    assert not (tmp_path / "out" / "kernel.toml").exists()
