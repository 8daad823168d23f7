"""The transformers backend: the fallback engine runs the same solver loop."""

import pytest

from aimokit.config import EngineConfig
from aimokit.engine import GenRequest, generate
from aimokit.engine.hf import TransformersEngine
from aimokit.problems import Problem
from aimokit.solver import Solver

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine():
    from aimokit.models import embedded_default_model

    return TransformersEngine(EngineConfig(backend="transformers", dtype="float32"), str(embedded_default_model()))


def test_generates_stops_and_respects_max_tokens(engine):
    prompt = engine.chat_prompt([{"role": "user", "content": "Write a python code block that prints 2+3."}])
    res = generate(engine, [GenRequest(prompt, max_tokens=8, temperature=0.0),
                            GenRequest(prompt, max_tokens=64, temperature=0.0, stop=(" ",))])
    assert res[0].n_tokens <= 8 and res[0].finish in ("length", "eos")
    assert res[1].finish == "stop" and res[1].stop_str == " " and res[1].text.endswith(" ")
    assert " " not in res[1].text[:-1]  # cut at the first stop string


def test_a_request_ends_as_soon_as_its_answer_closes(engine):
    """`done_when` (the protocol's answer check) stops generation mid-way, not after the fact."""
    from aimokit.protocols import get_protocol

    prompt = "Answers: $\\boxed{1}$, $\\boxed{2}$, $\\boxed{3}$, "  # the model goes on boxing 4, 5, 6, ...
    full, answered = generate(engine, [GenRequest(prompt, max_tokens=40, temperature=0.0),
                                       GenRequest(prompt, max_tokens=40, temperature=0.0, top_logprobs=3,
                                                  done_when=get_protocol("cot").answer_check("", ""))])
    assert full.finish == "length" and full.text.count("\\boxed{") > 2
    assert answered.finish == "answer" and answered.text.rstrip("$").endswith("\\boxed{4}")
    assert full.text.startswith(answered.text) and answered.n_tokens < full.n_tokens
    assert len(answered.entropies) == answered.n_tokens


def test_solver_runs_on_the_transformers_backend(engine, fast_cfg):
    cfg = fast_cfg.override({"solver.max_tokens_per_round": 24, "solver.max_tokens_total": 48})
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=2048)
    res = solver.solve([Problem("t", "What is 2 + 3?", 5)], samples=2, keep_responses=True)[0]
    assert res.samples == 2 and res.tokens > 0
    voted = {r["answer"] for r in res.responses if r["answer"] is not None}
    assert res.answer in (voted or {cfg.competition.fallback_answer})  # the vote's, or the fallback when none
    solver.close()


def test_vllm_missing_is_an_error_unless_a_fallback_is_set_and_then_it_is_recorded(monkeypatch, tmp_path, caplog):
    import sys

    import aimokit.engine as eng

    started = []

    class Stub:
        library = "json"  # imports anywhere

        def __init__(self, cfg, model_dir):
            started.append(model_dir)

    class NeedsVLLM(Stub):
        library = "vllm"

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    monkeypatch.setattr(eng, "backend_class", lambda name: {"transformers": Stub, "vllm": NeedsVLLM}[name])
    import pytest

    from aimokit.engine import EngineError

    with pytest.raises(EngineError, match="'vllm' but vllm cannot be imported.*set engine.fallback"):
        eng.create_engine(EngineConfig(backend="vllm", model=str(tmp_path)))  # no silent fallback
    assert started == []
    with caplog.at_level("WARNING"):
        engine = eng.create_engine(EngineConfig(backend="vllm", model=str(tmp_path), fallback="transformers"))
    assert isinstance(engine, Stub) and started == [str(tmp_path)]
    assert "FALLBACK" in caplog.text and engine.fell_back.startswith("vllm not importable")
