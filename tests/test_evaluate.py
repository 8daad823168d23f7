"""Evaluation: every response stored, maj and pass with intervals, the curve, the report, resuming."""

import json
import math

import polars as pl
import pytest

from aimokit.engine import GenResult
from aimokit.eval_report import write_report
from aimokit.evaluate import EvalConfig, run_evaluation
from aimokit.metrics import majority, pass_at_k, wilson
from aimokit.problems import Problem, ProblemFileError

from fakes import ScriptedEngine


def test_interval_and_estimators():
    lo, hi = wilson(0, 30)
    assert lo == 0.0 and 0.10 < hi < 0.12  # 0/30 is not "exactly 0 %"
    lo, hi = wilson(15, 30)
    assert lo < 0.5 < hi and math.isclose(lo + hi, 1.0, abs_tol=1e-9)
    assert pass_at_k(8, 0, 3) == 0.0 and pass_at_k(8, 8, 1) == 1.0
    assert math.isclose(pass_at_k(4, 1, 1), 0.25) and math.isclose(pass_at_k(4, 1, 2), 0.5)
    assert majority([3, 5, 5, None]) == 5 and majority([None]) is None and majority([7, 2]) == 2


def _engine():
    """Sample i of a problem answers 42 when i is even, 41 when odd; problem 'hard' always 7."""
    def respond(prompt, req):
        ans = 7 if "HARD" in prompt else (42 if req.seed % 2 == 0 else 41)
        return GenResult(f"Done: \\boxed{{{ans}}}", 5, "eos")
    return ScriptedEngine(respond)


def test_evaluation_stores_every_response_and_reports(fast_cfg, tmp_path):
    problems = [Problem("easy", "What is 6*7?", 42), Problem("hard", "HARD one", 42), Problem("mid", "6*7 again", 41)]
    ev = EvalConfig(samples=4, concurrency=8, write_every_s=0)
    df = run_evaluation(fast_cfg, problems, tmp_path / "ev", ev, engine=_engine())
    assert df.height == 12 and sorted(df.columns) == sorted([
        "problem_id", "sample", "prompt", "response", "answer", "gold", "correct", "boxed", "tokens", "code_runs",
        "code_errors", "aborted", "seconds", "finished_at", "entropy_mean", "entropy_median", "entropy_tail",
        "tool_spans", "answer_at", "tool_refusals", "chosen", "genselect"])
    assert set(df["answer_at"].to_list()) <= {"answer", "printed", ""}  # where each answer was read
    assert df["tool_spans"].list.len().sum() == df["code_runs"].sum() == 0  # no code here (the SFT tests run some)
    assert df["entropy_mean"].null_count() == 12  # no logprobs asked for: null, and replay says so
    stored = pl.read_parquet(tmp_path / "ev" / "responses.parquet")
    assert stored.height == 12 and stored.group_by("problem_id").len()["len"].to_list() == [4, 4, 4]
    assert stored.filter(pl.col("problem_id") == "hard")["correct"].sum() == 0
    m = write_report(tmp_path / "ev", ev)
    # easy: 2 right of 4, tie 41/42 -> majority picks the smaller (41): wrong; mid: gold 41 -> right; hard: wrong
    assert m["problems"] == 3 and math.isclose(m["pass"], 2 / 3) and math.isclose(m["maj"], 1 / 3)
    assert [c["k"] for c in m["curve"]] == [1, 2, 3, 4]
    assert math.isclose(m["curve"][0]["pass"], (0.5 + 0 + 0.5) / 3)
    assert m["curve"][-1]["pass"] == m["pass"]
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| 3 | 4 | 33.3% |" in report and "![accuracy_vs_samples.png]" in report
    # the selection loss: the gold was among the samples on easy and mid; what each policy picked is counted
    sel = m["selection"]
    assert sel["pass"] == 2 and sel["lost"]["weighted"] == 2 - sel["correct"]["weighted"]
    assert "## Selection loss" in report and "lost to selection" in report
    assert sel["correct"]["as run"] == 1  # the solver's own answers (no GenSelect here): mid only
    for png in ("accuracy_vs_samples.png", "time_tokens_per_problem.png"):
        assert (tmp_path / "ev" / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["responses"] == 12


def test_evaluation_resumes_and_refuses_unlabelled_problems(fast_cfg, tmp_path):
    problems = [Problem("a", "6*7", 42), Problem("b", "6*7", 42)]
    ev = EvalConfig(samples=2, concurrency=2)
    run_evaluation(fast_cfg, problems[:1], tmp_path / "ev", ev, engine=_engine())
    engine = _engine()
    df = run_evaluation(fast_cfg, problems, tmp_path / "ev", ev, engine=engine)
    assert df.height == 4 and all("6*7" in p for p in engine.prompts) and engine.calls == 2  # only 'b' was solved
    with pytest.raises(ProblemFileError, match="needs answers"):
        run_evaluation(fast_cfg, [Problem("c", "?", None)], tmp_path / "ev2", ev, engine=_engine())


def test_each_worker_gets_its_own_gpus_out_of_the_visible_ones():
    from aimokit.config import ConfigError
    from aimokit.evaluate import worker_devices

    assert worker_devices(2, 1, 4, None) == ["0", "1"]
    assert worker_devices(2, 1, 2, "2,3") == ["2", "3"]  # the parent's devices, not 0 and 1
    assert worker_devices(2, 2, 4, "4,5,6,7") == ["4,5", "6,7"]  # tensor-parallel engines, two GPUs each
    assert worker_devices(3, 1, 0, None) is None  # CPU workers share the machine
    with pytest.raises(ConfigError, match="needs 4 GPUs; 2 are visible.*--workers 1"):
        worker_devices(2, 2, 2, None)


def test_each_problem_is_taken_by_one_worker_process_whatever_its_id(tmp_path):
    """evaluate's workers take problems from one queue served over a local socket: two processes racing over it
    get none twice and all between them, ids with any characters; a wrong key is refused."""
    import subprocess
    import sys

    from aimokit.work_queue import WorkQueue, connect, serve

    ids = [f"p{i}/../x y\n{i}" for i in range(300)]
    queue = WorkQueue([{"id": i} for i in ids])
    (host, port), key, stop = serve(queue)
    race = ("import json, sys; from aimokit.work_queue import connect; "
            "q = connect((sys.argv[1], int(sys.argv[2])), bytes.fromhex(sys.argv[3])); got = []\n"
            "while (p := q.take(sys.argv[4])) is not None: got.append(p['id'])\n"
            "print(json.dumps(got))")
    try:
        procs = [subprocess.Popen([sys.executable, "-c", race, host, str(port), key.hex(), f"w{i}"],
                                  stdout=subprocess.PIPE, text=True) for i in range(2)]
        got = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert not set(got[0]) & set(got[1]) and sorted(got[0] + got[1]) == sorted(ids)
        held = queue.state()["held"]
        assert queue.take("w0") is None and sum(map(len, held.values())) == 300 and set(held) <= {"w0", "w1"}
        with pytest.raises(Exception, match="digest"):  # multiprocessing's AuthenticationError
            connect((host, port), b"not the key" * 2)
    finally:
        stop()


def test_workers_share_one_queue_and_one_that_never_starts_leaves_its_problems_to_the_others(fast_cfg, tmp_path):
    """What run_workers' processes do, in one process: each worker's evaluation takes problems from one queue.
    A worker whose engine fails to start has taken nothing (problems are taken only when an engine has room);
    two that run take every problem between them, each problem once, and report each written."""
    import threading

    from aimokit.work_queue import WorkQueue

    problems = [Problem(f"q{i}", f"6*7 number {i}", 42) for i in range(12)]
    queue = WorkQueue([{"id": p.id, "problem": p.problem, "answer": p.answer} for p in problems])

    def take(name):
        def next_problem():
            p = queue.take(name)
            return None if p is None else Problem(p["id"], p["problem"], p["answer"])
        return next_problem

    def written(name):
        return lambda ids: [queue.finish(name, i, None) for i in ids]

    ev = EvalConfig(samples=2, concurrency=2, write_every_s=0)
    broken = fast_cfg.override({"engine.model": str(tmp_path / "no-model")})
    from aimokit.models import ModelError

    with pytest.raises(ModelError, match="no-model has no config.json"):
        run_evaluation(broken, [], tmp_path / "w0", ev, take=take("w0"), written=written("w0"))
    assert queue.state()["held"] == {} and queue.state()["todo"] == 12  # its engine never started: took nothing
    errors = []

    def worker(i):
        try:
            run_evaluation(fast_cfg, [], tmp_path / f"w{i}", ev, engine=_engine(), take=take(f"w{i}"),
                           written=written(f"w{i}"))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    got = [set(pl.read_parquet(f)["problem_id"]) if (f := tmp_path / f"w{i}" / "responses.parquet").exists() else set()
           for i in (1, 2)]
    assert not got[0] & got[1] and got[0] | got[1] == {p.id for p in problems}
    assert queue.state()["done"] == 12 and queue.state()["held"] == {}


def test_a_failed_worker_is_an_error_only_when_problems_are_left(tmp_path, caplog):
    from aimokit.evaluate import RESPONSE_SCHEMA, WorkerError, _check_workers

    df = pl.DataFrame({"problem_id": ["a", "b"]}).with_columns(
        [pl.lit(None, t).alias(c) for c, t in RESPONSE_SCHEMA.items() if c != "problem_id"])
    log = tmp_path / "workers" / "1" / "worker.log"
    with pytest.raises(WorkerError, match=r"1 of 2 evaluation workers failed \(see .*worker.log\); 1 problems are "
                                          r"not evaluated.*a rerun resumes"):
        _check_workers([log], 2, ["a", "b", "c"], df, tmp_path / "responses.parquet")
    with caplog.at_level("WARNING"):
        _check_workers([log], 2, ["a", "b"], df, tmp_path / "responses.parquet")  # the other took both
    assert "the others evaluated every problem" in caplog.text and "worker.log" in caplog.text
    _check_workers([], 2, ["a", "b", "c"], df, tmp_path / "responses.parquet")


@pytest.mark.slow
def test_evaluation_split_over_two_worker_processes_merges_into_one_file_and_resumes(tmp_path):
    """`--workers 2`: two processes, one engine each (the transformers backend on a tiny model here; one GPU each on
    a GPU machine), each claiming problems from one queue; one responses.parquet holds every response once; a rerun
    does no work; a worker that fails is named with its log, and what finished is kept."""
    import os
    import subprocess
    import sys

    from transformers import AutoTokenizer

    from aimokit.models import embedded_default_model
    from layout import ROOT
    from tiny_llama import save_tiny_llama

    model = save_tiny_llama(tmp_path / "m", AutoTokenizer.from_pretrained(embedded_default_model()))
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i}?", "answer": 2 * i}) + "\n"
                                for i in range(5)))
    out = tmp_path / "ev"

    def run(model_dir):
        cmd = [sys.executable, str(ROOT / "build.py"), "evaluate", "--problems", str(problems), "--samples", "2",
               "--workers", "2", "--out", str(out), "--set", "engine.backend=transformers",
               "--set", f"engine.model={model_dir}", "--set", "engine.dtype=float32", "--set", "solver.max_rounds=1",
               "--set", "solver.max_tokens_per_round=6", "--set", "solver.max_tokens_total=6"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})

    first = run(model)
    assert first.returncode == 0, first.stderr[-2000:]
    df = pl.read_parquet(out / "responses.parquet")
    assert df.height == 10 and sorted(set(df["problem_id"])) == [f"q{i}" for i in range(5)]
    assert df.unique(subset=["problem_id", "sample"]).height == 10
    shards = [out / "workers" / w / "responses.parquet" for w in ("0", "1")]  # a worker may find all taken
    dealt = [set(pl.read_parquet(f)["problem_id"]) if f.exists() else set() for f in shards]
    assert not dealt[0] & dealt[1] and dealt[0] | dealt[1] == {f"q{i}" for i in range(5)}  # each once, by one
    assert (out / "report.md").is_file() and json.loads((out / "eval_meta.json").read_text())["workers"] == 2
    logs = {w: (out / "workers" / w / "worker.log").stat().st_mtime for w in ("0", "1")}
    again = run(model)  # everything is there: no worker starts, the file is unchanged
    assert again.returncode == 0 and pl.read_parquet(out / "responses.parquet").equals(df)
    assert {w: (out / "workers" / w / "worker.log").stat().st_mtime for w in ("0", "1")} == logs
    problems.write_text(problems.read_text() + json.dumps({"id": "q9", "problem": "9 + 9?", "answer": 18}) + "\n")
    import shutil

    broken = shutil.copytree(model, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    bad = run(broken)  # the new problem's worker cannot start its engine
    assert bad.returncode != 0 and "1 of 1 evaluation workers failed" in bad.stderr + bad.stdout
    assert "worker.log" in bad.stderr + bad.stdout and pl.read_parquet(out / "responses.parquet").height == 10


def test_eval_config_tool_room_is_a_quarter_of_the_width_unless_given():
    """tool_room -1 (the default) starts up to a quarter of the width more samples during tool turns; 0 turns it
    off; below -1 is an error that names the setting."""
    from aimokit.config import ConfigError

    assert EvalConfig().room_for(64) == 16 and EvalConfig().room_for(6) == 1
    assert EvalConfig(tool_room=0).room_for(64) == 0 and EvalConfig(tool_room=5).room_for(64) == 5
    assert EvalConfig().in_flight(256) == {"concurrency": 256, "tool_room": 64}  # 0: the engine's max_num_seqs
    assert EvalConfig(concurrency=32).in_flight(256) == {"concurrency": 32, "tool_room": 8}
    with pytest.raises(ConfigError, match="tool_room >= -1"):
        EvalConfig(tool_room=-2)
