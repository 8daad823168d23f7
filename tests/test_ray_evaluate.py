"""evaluate --ray: engines as Ray actors on one queue; every problem done once into one file, a dead actor's
problems redone by another, a killed driver resumed, and an actor on a second node (loopback)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from layout import ROOT

ray = pytest.importorskip("ray")

from aimokit.evaluate import EvalConfig  # noqa: E402
from aimokit.evaluate_ray import RayEvalError, run_ray  # noqa: E402
from aimokit.problems import Problem  # noqa: E402
from aimokit.work_queue import WorkQueue  # noqa: E402

HELPERS = str(ROOT / "tests" / "helpers")
PROBLEMS = [Problem(f"p{i}", f"Problem number {i}: what is 6 * 7?", 42) for i in range(6)]


@pytest.fixture
def ray_env(monkeypatch):
    """The actors build their engine from the test helpers; Ray is shut down after each test."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([HELPERS, str(ROOT / "src")]))
    monkeypatch.setenv("AIMOKIT_ENGINE_FACTORY", "ray_engines:scripted")
    yield monkeypatch
    ray.shutdown()


def _once(df: pl.DataFrame, samples: int) -> None:
    """Every problem, every sample, exactly once."""
    assert sorted(df["problem_id"].unique().to_list()) == sorted(p.id for p in PROBLEMS)
    assert df.group_by("problem_id", "sample").len()["len"].max() == 1
    assert df.group_by("problem_id").len()["len"].to_list() == [samples] * len(PROBLEMS)


def test_the_queue_hands_each_problem_out_once_and_requeues_a_dead_workers_up_to_the_limit():
    q = WorkQueue([{"id": "a"}, {"id": "b"}, {"id": "c"}], retries=1)
    assert q.take("w0")["id"] == "a" and q.take("w1")["id"] == "b"
    assert q.finish("w1", "b", "rows") and not q.finish("w1", "b", "again")  # counted once
    assert q.lost("w0", "killed") == ["a"]  # back at the front
    assert q.take("w1")["id"] == "a" and q.take("w1")["id"] == "c" and q.take("w1") is None
    # a's second loss is past the limit: given up, with both reasons; c's first: back in the queue
    assert q.lost("w1", "oom") == ["c"]
    assert q.state()["gave_up"] == {"a": ["w0: killed", "w1: oom"]} and q.take("w2")["id"] == "c"
    assert q.drain() == [("b", "rows")] and q.drain() == []


def test_two_local_actors_share_one_queue_into_one_file(ray_env, fast_cfg, tmp_path):
    ev = EvalConfig(samples=2, concurrency=2, write_every_s=0, workers=2, ray="local")
    df = run_ray(fast_cfg, PROBLEMS, tmp_path / "ev", ev)
    _once(df, 2)
    stored = pl.read_parquet(tmp_path / "ev" / "responses.parquet")
    assert stored.height == 12 and stored["correct"].all()
    meta = json.loads((tmp_path / "ev" / "eval_meta.json").read_text())
    assert set(meta["where"]) == {"engine-0", "engine-1"} and meta["failed_actors"] == {}


def test_an_actor_killed_mid_problem_has_its_problem_redone_by_another(ray_env, fast_cfg, tmp_path, caplog):
    ray_env.setenv("AIMOKIT_ENGINE_FACTORY", "ray_engines:dies_mid_problem")
    ray_env.setenv("AIMOKIT_TEST_DIE_FILE", str(tmp_path / "died"))
    ev = EvalConfig(samples=2, concurrency=2, write_every_s=0, workers=2, ray="local", retries=1)
    with caplog.at_level("WARNING"):
        df = run_ray(fast_cfg, PROBLEMS, tmp_path / "ev", ev)
    _once(df, 2)  # nothing lost, nothing done twice
    meta = json.loads((tmp_path / "ev" / "eval_meta.json").read_text())
    (dead,) = meta["failed_actors"]
    assert (tmp_path / "died").exists() and "problem(s) back in the queue" in caplog.text
    assert dead in meta["where"]


def test_a_run_that_cannot_finish_names_what_failed_and_keeps_the_rest(ray_env, fast_cfg, tmp_path):
    ray_env.setenv("AIMOKIT_ENGINE_FACTORY", "ray_engines:no_such_engine")
    ev = EvalConfig(samples=2, concurrency=2, write_every_s=0, workers=1, ray="local", retries=0)
    with pytest.raises(RayEvalError, match=r"6 problem\(s\) not evaluated .*engine-0: .*no_such_engine"):
        run_ray(fast_cfg, PROBLEMS, tmp_path / "ev", ev)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _problems_file(tmp_path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n"
                            for p in PROBLEMS))
    return path


@pytest.mark.slow
def test_an_actor_on_a_second_node_takes_problems(ray_env, tmp_path):
    """`ray start --head` and a second `ray start --address=127.0.0.1:PORT` as another process, one CPU each,
    then `evaluate --ray 127.0.0.1:PORT` as a user runs it: one engine lands on each node."""
    import secrets
    import tempfile

    port = _free_port()
    # Ray 2.59+ authenticates a local cluster by token: every node and the driver share one (README's recipe)
    ray_env.setenv("RAY_AUTH_MODE", "token")
    ray_env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    ray_bin = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 characters
    head = [ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
            "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={temp}"]
    try:
        subprocess.run(head, check=True, env=env, capture_output=True, timeout=180)
        subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                        "--num-cpus=1", "--num-gpus=0"], check=True, env=env, capture_output=True, timeout=180)
        proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "evaluate", "--problems",
                               str(_problems_file(tmp_path)), "--samples", "2", "--out", str(tmp_path / "ev"),
                               "--ray", f"127.0.0.1:{port}", "--workers", "2", "--write-every-s", "0"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _once(pl.read_parquet(tmp_path / "ev" / "responses.parquet"), 2)
        meta = json.loads((tmp_path / "ev" / "eval_meta.json").read_text())
        nodes = {where.split(" pid")[0] for where in meta["where"].values()}
        assert len(nodes) == 2, meta["where"]  # one engine per node (one CPU each)
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_the_same_command_runs_as_a_ray_job(ray_env, tmp_path):
    """`ray job submit` to a head started with its dashboard (ray[default]): the job's driver connects with
    `--ray auto`, its engines take every problem once, and the file is written where the command says."""
    import secrets
    import tempfile

    pytest.importorskip("ray.dashboard.modules.job.sdk")
    port, dash = _free_port(), _free_port()
    ray_env.setenv("RAY_AUTH_MODE", "token")
    ray_env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    ray_bin = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                        "--num-gpus=0", "--include-dashboard=true", f"--dashboard-port={dash}", f"--temp-dir={temp}"],
                       check=True, env=env, capture_output=True, timeout=180)
        proc = subprocess.run([ray_bin, "job", "submit", "--address", f"http://127.0.0.1:{dash}", "--",
                               sys.executable, str(ROOT / "build.py"), "evaluate", "--problems",
                               str(_problems_file(tmp_path)), "--samples", "2", "--out", str(tmp_path / "ev"),
                               "--ray", "auto", "--workers", "2", "--write-every-s", "0"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "succeeded" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
        _once(pl.read_parquet(tmp_path / "ev" / "responses.parquet"), 2)
        assert json.loads((tmp_path / "ev" / "eval_meta.json").read_text())["ray"] == "auto"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_a_killed_driver_restarted_on_the_same_out_resumes(ray_env, tmp_path):
    ray_env.setenv("AIMOKIT_TEST_STEP_S", "0.3")
    problems = _problems_file(tmp_path)
    out = tmp_path / "ev"
    cmd = [sys.executable, str(ROOT / "build.py"), "evaluate", "--problems", str(problems), "--samples", "2",
           "--out", str(out), "--ray", "--workers", "1", "--set", "solver.max_tokens_per_round=64",
           "--write-every-s", "0", "--concurrency", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "responses.parquet").exists() and pl.read_parquet(out / "responses.parquet").height >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the driver ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    first = pl.read_parquet(out / "responses.parquet")
    assert 2 <= first.height < 12
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming:" in proc.stderr
    _once(pl.read_parquet(out / "responses.parquet"), 2)
