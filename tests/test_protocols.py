"""Tool-call protocols through the real solver and sandbox: call -> run -> result -> next turn -> answer."""

import json

import pytest
from fakes import ScriptedEngine, tir_respond

from aimokit.config import ConfigError, KernelConfig
from aimokit.engine import GenResult
from aimokit.problems import Problem
from aimokit.protocols import get_protocol
from aimokit.solver import Solver


def _solve(cfg: KernelConfig, respond, problem="What is 6 * 7?"):
    engine = ScriptedEngine(respond)
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=4096)
    try:
        return solver.solve([Problem("p", problem, 42)], samples=2)[0], engine
    finally:
        solver.close()


def test_fenced_is_the_default_and_reads_and_answers_as_before(fast_cfg):
    fenced = get_protocol(fast_cfg.solver.protocol)
    assert fenced.name == "fenced"
    tail = "Let me see.\n```python\nx = 1\n```\nthen\n```python\nprint(x + 1)\n```\n"
    assert fenced.pending_call(tail) == "print(x + 1)\n"  # the last block
    assert fenced.pending_call("```python\nprint(1)\n```\nso \\boxed{1}") is None  # answered after the code
    assert fenced.pending_call("```python\n   \n```\n") is None
    assert fenced.tool_result("code\n```output", "7") == "\n7\n```\n"  # the model opened the fence itself
    assert fenced.tool_result("```\n", "") == "```output\n(no output; use print() to see values)\n```\n"
    res, engine = _solve(fast_cfg, tir_respond)
    assert res.answer == 42 and res.code_runs == 2 and res.correct
    assert [p.endswith("```\n```output\n42\n```\n") for p in engine.prompts] == [False, False, True, True]


def test_hermes_tool_calls_run_in_the_sandbox_and_the_result_comes_back_as_a_tool_response(fast_cfg):
    cfg = fast_cfg.override({"solver.protocol": "hermes"})

    def qwen(prompt, req):
        assert req.stop == ("</tool_call>",)
        if "<tool_response>" not in prompt:
            call = json.dumps({"name": "python", "arguments": {"code": "print(6 * 7)"}})
            return GenResult(f"<think>compute it</think>\n<tool_call>\n{call}\n</tool_call>", 20, "stop", "</tool_call>")
        out = prompt.rsplit("<tool_response>\n", 1)[1].split("\n</tool_response>", 1)[0]
        return GenResult(f"<think>it printed {out}</think>\nThe answer is \\boxed{{{out}}}.", 10, "eos")

    res, engine = _solve(cfg, qwen)
    assert res.answer == 42 and res.code_runs == 2 and res.code_errors == 0
    assert "<tools>" in engine.prompts[0] and '"name": "python"' in engine.prompts[0]
    assert "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n" in engine.prompts[-1]


def test_hermes_calls_to_an_unknown_tool_or_broken_json_are_answered_with_an_error(fast_cfg):
    hermes = get_protocol("hermes")
    assert "NameError" in hermes.pending_call('<tool_call>{"name": "browser", "arguments": {}}</tool_call>')
    assert "SyntaxError" in hermes.pending_call("<tool_call>{not json</tool_call>")
    encoded = json.dumps({"name": "python", "arguments": json.dumps({"code": "print(1)"})})
    assert hermes.pending_call(f"<tool_call>{encoded}</tool_call>") == "print(1)"  # arguments sent as a string
    assert hermes.pending_call("no call here") is None
    cfg = fast_cfg.override({"solver.protocol": "hermes"})
    seen = []

    def confused(prompt, req):
        if "<tool_response>" not in prompt:
            return GenResult('<tool_call>{"name": "browser", "arguments": {"q": "x"}}</tool_call>', 9, "stop",
                             "</tool_call>")
        seen.append(prompt.rsplit("<tool_response>\n", 1)[1])
        return GenResult("\\boxed{7}", 3, "eos")

    res, _ = _solve(cfg, confused)
    assert res.answer == 7 and res.code_errors == 2 and all("no tool named browser" in s for s in seen)


def test_hermes_declares_the_tool_with_a_real_chat_template():
    """The embedded model's template: the tool is declared whether or not the template renders `tools`."""
    from transformers import AutoTokenizer

    from aimokit.config import CompetitionConfig, SamplingConfig
    from aimokit.engine.chat import apply_chat_template
    from aimokit.models import embedded_default_model

    tok = AutoTokenizer.from_pretrained(embedded_default_model())

    class Engine:
        def chat_prompt(self, messages, tools=None):
            return apply_chat_template(tok, messages, tools)

    text = get_protocol("hermes").prompt(Engine(), "What is 1 + 1?", SamplingConfig(protocol="hermes"),
                                        CompetitionConfig())
    assert "<tools>" in text and '"name": "python"' in text and "What is 1 + 1?" in text
    assert text.count('"name": "python"') == 1  # declared once, by the template or by the protocol


def test_cot_runs_no_tools(fast_cfg):
    cfg = fast_cfg.override({"solver.protocol": "cot", "solver.prompt": "cot"})

    def reasoner(prompt, req):
        assert req.stop == ()
        return GenResult("```python\nprint(1)\n```\nSo \\boxed{42}.", 10, "eos")

    res, engine = _solve(cfg, reasoner)
    assert res.answer == 42 and res.code_runs == 0 and len(engine.prompts) == 2  # one call per sample


def test_an_unknown_protocol_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="solver.protocol = 'harmonie': use one of cot, fenced, hermes"):
        KernelConfig.load(None, {"solver.protocol": "harmonie"})
