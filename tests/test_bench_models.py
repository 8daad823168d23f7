"""The GPU benchmarks' random models are real checkpoints of their families: built small on CPU here, they load
in transformers with every tensor named and shaped as the family's loader expects (vLLM reads the same names)."""

import pytest

from layout import ROOT


@pytest.fixture(scope="module")
def common():
    """benchmarks/common.py, loaded by path: the benchmarks folder is not put on sys.path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_MOE = dict(hidden_size=64, intermediate_size=64, num_local_experts=4, num_experts_per_tok=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16)


@pytest.mark.parametrize("mxfp4", [True, False])
def test_the_gpt_oss_shaped_moe_loads_with_every_tensor_in_place(common, default_model, tmp_path, mxfp4):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = common.make_gpt_oss(tmp_path / "moe", default_model, layers=2, mxfp4=mxfp4, device="cpu", **TINY_MOE)
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)  # MXFP4: dequantized on CPU
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids("<|call|>") < model.config.vocab_size == len(tok)  # harmony's tokens are single
    assert model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, do_sample=False).shape == (1, 5)


def test_the_7b_shaped_llama_loads_with_every_tensor_in_place(common, default_model, tmp_path):
    from transformers import AutoModelForCausalLM

    shape = dict(common.SHAPE, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4)
    out = common.make_model(tmp_path / "llama", default_model, shape, device="cpu")
    _, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}


def test_the_code_shim_drives_real_tool_rounds_and_varies_them_per_sample(common, fast_cfg):
    """CodeShim on a scripted engine: every round ends in a call the solver really runs; with vary_rounds a
    sample answers after its own fixed 1..N rounds, and boundary_stats counts each tool turn."""
    from fakes import ScriptedEngine

    from aimokit.engine import GenResult
    from aimokit.problems import Problem
    from aimokit.solver import Solver

    def run(vary):
        shim = common.CodeShim(ScriptedEngine(lambda prompt, req: GenResult("Some thought.", 3, "length")),
                               vary_rounds=vary)
        cfg = fast_cfg.override({"solver.max_rounds": 3, "solver.early_stop": []})
        solver = Solver(shim, cfg.solver, cfg.sandbox, cfg.competition)
        res = solver.solve([Problem("p", "6*7?", 42)], samples=6, keep_responses=True)[0]
        solver.close()
        return shim, res

    shim, res = run(0)
    # three calls run, a fourth answered "tool budget spent", then the answer
    assert [x["code_runs"] for x in res.responses] == [3] * 6 and res.answered == 6
    assert [x["tool_refusals"] for x in res.responses] == [1] * 6
    assert common.boundary_stats(shim.events)["tool_turns"] == 24
    shim, res = run(3)
    runs = [x["code_runs"] for x in res.responses]
    assert runs == [shim.rounds_for((0, k)) - 1 for k in range(6)] and len(set(runs)) > 1 and res.answered == 6


def test_the_full_size_gpt_oss_folder_is_gpt_oss_120b_with_gpt_oss_tokenizer(common, tmp_path):
    """No weights: vLLM makes them (load_format = "dummy"); the config is 120b's and the vocabulary o200k's."""
    from transformers import AutoConfig, AutoTokenizer

    from aimokit.vocab import write_hf_tokenizer

    out = common.make_gpt_oss_full(tmp_path / "full", write_hf_tokenizer(tmp_path / "tok"))
    cfg = AutoConfig.from_pretrained(out)
    assert (cfg.num_hidden_layers, cfg.num_local_experts, cfg.num_experts_per_tok, cfg.hidden_size) == (36, 128, 4, 2880)
    assert cfg.vocab_size == len(AutoTokenizer.from_pretrained(out)) == 201088
    assert cfg.quantization_config["quant_method"] == "mxfp4" and not list(out.glob("*.safetensors"))


def test_the_compile_watch_sees_a_child_process_report_on_stdout_or_stderr(common, tmp_path):
    """vLLM's JIT monitor logs from the engine core (a child) to stdout by default: the watch reads both streams,
    names the kernel, and places it in its time window; other lines pass through."""
    import subprocess
    import sys

    script = ("import sys, time\n"
              "print('(EngineCore pid=7) WARNING [jit_monitor.py:132] Triton kernel JIT compilation during inference:"
              " _topk_forward (constexprs={BLOCK_M=32}). This causes a latency spike', flush=True)\n"
              "print('TileLang JIT compilation during inference: mhc_pre. x', file=sys.stderr, flush=True)\n"
              "print('an ordinary line', flush=True)\n")
    probe = ("import sys, time, subprocess; sys.path.insert(0, %r)\n"
             "from common import CompileWatch\n"
             "w = CompileWatch(__import__('pathlib').Path(%r))\n"
             "t0 = time.monotonic(); subprocess.run([sys.executable, '-c', %r]); t1 = time.monotonic()\n"
             "got = w.between(t0, t1); before = w.between(0, t0 - 1)\n"
             "print('WATCHED', sorted(got), before, file=w.real, flush=True)\n") % (
        str(common.ROOT / "benchmarks"), str(tmp_path / "engine.log"), script)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    line = next(l for l in out.stdout.splitlines() if l.startswith("WATCHED"))
    assert line == "WATCHED ['TileLang mhc_pre', 'Triton _topk_forward'] []", out.stdout + out.stderr
    assert "an ordinary line" in out.stdout and "an ordinary line" in (tmp_path / "engine.log").read_text()


def test_timed_steps_records_each_step_with_the_requests_it_began_with(common, monkeypatch):
    """What the evaluate benchmarks set side by side: the solver's steps and raw vLLM's, each with the requests
    in flight, so a gap reads as a thinner batch (samples at their tool turns) or as time outside the steps."""
    clock = iter([0.0, 0.5, 1.0, 3.0, 5.0, 5.25])
    monkeypatch.setattr(common, "now", lambda: next(clock))

    class Engine:
        live = [8, 2]

        def get_num_unfinished_requests(self):
            return self.live.pop(0)

    class Inner:
        engine = Engine()

        def step(self, deadline):
            return [deadline]

    inner = Inner()
    with common.timed_steps(inner, live=inner.engine.get_num_unfinished_requests) as records:
        assert inner.step(7.0) == [7.0] and inner.step(None) == [None]
    assert records == [(0.5, 8), (2.0, 2)] and inner.step.__func__ is Inner.step  # the engine's own step is back
    with common.timed_steps(inner) as untold:  # any backend: the seconds alone
        inner.step(1.0)
    assert untold == [(0.25, None)]
    got = common.step_summary(records, wall_s=4.0)
    assert got == {"engine_steps": 2, "engine_step_s": 2.5, "outside_steps_s": 1.5, "mean_live": 5.0,
                   "time_weighted_live": 3.2, "peak_live": 8, "steps_under_half_peak": 1}
    assert common.step_summary([], 1.0)["mean_live"] == 0.0


def test_raw_baselines_ask_top_logprobs_flat_as_the_kit_does(common):
    """Raw vLLM is measured against the solver: asked as dicts (vLLM's default), its top logprobs hold several
    tracked objects per token in flight and its front end pays the garbage collector for a form the kit's
    backend never asks (engine/vllm.py sets flat_logprobs). The dict form stays reachable for raw_logprobs.py."""
    flat = common.raw_sampling(5, temperature=1.0, max_tokens=8, ignore_eos=True)
    assert (flat.logprobs, flat.flat_logprobs, flat.max_tokens, flat.ignore_eos) == (5, True, 8, True)
    assert common.raw_sampling(5, flat_logprobs=False).flat_logprobs is False
    none = common.raw_sampling(None)
    assert (none.logprobs, none.flat_logprobs) == (None, False)
