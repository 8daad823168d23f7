"""The competition interfaces, against a stand-in that enforces what the real relay and gateways enforce.

tests/stand_ins/kaggle_evaluation is laid out like the package that ships with the
AIMO-2/3 data: plain named functions only, routing by __name__, predict on a
server thread, the gateway's row shapes and row-count check, serve() blocking
under KAGGLE_IS_COMPETITION_RERUN and run_local_gateway otherwise.
"""

import json
import subprocess
import sys
import threading

import polars as pl
import pytest

from aimokit.gateway import GatewayError, run_local_gateway
from aimokit.kernel import Kernel
from aimokit.serving import make_predict, serve

from fakes import tir_respond
from layout import ROOT

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

ROWS = [{"id": "x", "problem": "p1"}, {"id": "y", "problem": "p2"}, {"id": "z", "problem": "p3"}]
SERVERS = {"aimo2": ("kaggle_evaluation.aimo_2_inference_server", "AIMO2InferenceServer"),
           "aimo3": ("kaggle_evaluation.aimo_3_inference_server", "AIMO3InferenceServer")}


def _cfg(fast_cfg, data, comp="aimo3"):
    module, cls = SERVERS[comp]
    return fast_cfg.override({"competition.data_dir": str(data), "competition.server_module": module,
                              "competition.server_class": cls})


def test_the_stand_in_refuses_what_the_real_relay_refuses(competition, fast_cfg, scripted, monkeypatch):
    data = competition(ROWS)
    monkeypatch.syspath_prepend(str(data))
    from kaggle_evaluation.aimo_3_inference_server import AIMO3InferenceServer

    kernel = Kernel(fast_cfg, engine_factory=lambda c: scripted(tir_respond))
    with pytest.raises(ValueError, match="must be functions, got <class 'method'>"):
        AIMO3InferenceServer(kernel.predict)  # what the kit passed before: a bound method
    with pytest.raises(ValueError, match="must be named"):
        AIMO3InferenceServer(lambda *a: None)
    server = AIMO3InferenceServer(make_predict(kernel))
    assert list(server.server.listeners_map) == ["predict"]  # routed by __name__
    # A function with another name registers, but the gateway's call to `predict` finds no listener.
    def solve(*a):
        return 0
    from kaggle_evaluation.core.templates import GatewayRuntimeError

    with pytest.raises(GatewayRuntimeError, match="SERVER_MISSING_ENDPOINT: No listener for predict"):
        AIMO3InferenceServer(solve).run_local_gateway((str(data / "test.csv"),))


@pytest.mark.parametrize("comp", ["aimo2", "aimo3"])
def test_local_gateway_path_answers_every_row_on_a_server_thread(competition, fast_cfg, scripted, comp):
    data = competition(ROWS)
    threads = []

    def respond(prompt, req):
        threads.append(threading.current_thread() is threading.main_thread())
        return tir_respond(prompt, req)

    cfg = _cfg(fast_cfg, data, comp)
    serve(cfg, Kernel(cfg, engine_factory=lambda c: scripted(respond)))
    sub = pl.read_parquet("submission.parquet")  # written by the gateway, in the working directory
    assert sub.columns == ["id", "answer"] and sorted(sub["id"].to_list()) == ["x", "y", "z"]
    assert sub["answer"].to_list() == [42, 42, 42]
    assert threads and not any(threads)  # predict never ran on the main thread
    assert not (data.parent / "working" / "result.json").exists()


def test_rerun_path_serves_until_the_gateway_is_done(competition, fast_cfg, scripted, monkeypatch):
    data = competition(ROWS)
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    cfg = _cfg(fast_cfg, data)
    kernel = serve(cfg, Kernel(cfg, engine_factory=lambda c: scripted(tir_respond)))
    assert json.loads(open("result.json").read()) == {"Succeeded": True}
    assert sorted(pl.read_parquet("submission.parquet")["id"].to_list()) == ["x", "y", "z"]
    assert len(kernel.results) == 3


def test_reference_csv_passes_the_answer_column_and_it_is_graded(competition, fast_cfg, scripted, monkeypatch):
    data = competition([dict(r, answer=42 if r["id"] != "z" else 7) for r in ROWS], file="reference.csv")
    cfg = _cfg(fast_cfg, data)
    import importlib
    monkeypatch.syspath_prepend(str(data))
    server = importlib.import_module(SERVERS["aimo3"][0]).AIMO3InferenceServer
    kernel = Kernel(cfg, engine_factory=lambda c: scripted(tir_respond))
    server(make_predict(kernel)).run_local_gateway((str(data / "reference.csv"),))
    kernel.close()
    assert {r.id: r.correct for r in kernel.results} == {"x": True, "y": True, "z": False}


def test_malformed_rows_and_repeated_ids_still_answer_every_row(competition, fast_cfg, scripted):
    rows = ROWS + [{"id": "x", "problem": "p1 again"}, {"id": "w", "problem": None}, {"id": "v", "problem": "  "}]
    data = competition(rows)
    calls = []
    cfg = _cfg(fast_cfg, data)
    kernel = serve(cfg, Kernel(cfg, engine_factory=lambda c: scripted(lambda p, r: calls.append(p) or tir_respond(p, r))))
    sub = pl.read_parquet("submission.parquet")
    assert sub.height == 6 and sub["answer"].is_between(0, 999).all()
    by_id = {}
    for i, a in sub.iter_rows():
        by_id.setdefault(i, set()).add(a)
    assert by_id["x"] == {42} and by_id["w"] == {0} and by_id["v"] == {0}
    assert len(kernel.results) == 3  # x once, y, z: the repeat and the malformed rows cost no solve
    assert any("malformed row" in e for e in kernel.events)
    # Direct calls with odd shapes: never an exception, always one row per id.
    p = make_predict(kernel)
    assert p(pl.Series("id", ["a", "b"]), pl.Series("problem", ["q", "r"])).height == 2
    assert p(pl.Series("id", [], dtype=pl.String), pl.Series("problem", [], dtype=pl.String)).height == 0
    assert p("bare", 12345)["answer"].to_list() == [0]


def test_local_gateway_refuses_a_bound_method_like_the_relay(fast_cfg, scripted):
    kernel = Kernel(fast_cfg, engine_factory=lambda c: scripted(tir_respond))
    with pytest.raises(GatewayError, match="must be functions"):
        run_local_gateway(kernel.predict, [], fast_cfg.run.output_dir, fast_cfg.competition)
    with pytest.raises(GatewayError, match="must be named"):
        run_local_gateway(lambda *a: None, [], fast_cfg.run.output_dir, fast_cfg.competition)


def test_aimo1_environment(competition, scripted, fast_cfg):
    data = competition(ROWS)
    (data / "aimo.py").write_text(AIMO)
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


def test_predict_answers_in_the_competitions_type_and_reads_gold_as_one(fast_cfg, scripted, monkeypatch):
    """The interface's answer type at both crossings: a gold from the CSV ("42", 42.0) is read as one, and an
    answer that is none (were the kernel ever to give one) is replaced by the fallback, with an event."""
    from aimokit.serving import predict_row

    kernel = Kernel(fast_cfg, engine_factory=lambda c: scripted(tir_respond))
    try:
        golds = []
        monkeypatch.setattr(kernel, "predict", lambda pid, text, gold=None: golds.append(gold) or 42)
        for gold in ("42", 42.0, 42):
            out = predict_row(kernel, pl.Series("id", ["g"]), pl.Series("problem", ["p"]), pl.Series("answer", [gold]))
            assert out["answer"].to_list() == [42] and out["answer"].dtype == pl.Int64
        assert golds == [42, 42, 42] and all(type(g) is int for g in golds)
        assert predict_row(kernel, "h", "p", pl.Series("answer", [2.5]))["answer"].to_list() == [42]  # no gold then
        assert golds[-1] is None
        monkeypatch.setattr(kernel, "predict", lambda pid, text, gold=None: 7.5)
        assert predict_row(kernel, "i", "p")["answer"].to_list() == [fast_cfg.competition.fallback_answer]
        assert any("is no int" in e for e in kernel.events)
    finally:
        kernel.close()
