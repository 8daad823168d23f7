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
        return solver.solve([Problem("p", problem, 42)], samples=2, keep_responses=True)[0], engine
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
    with pytest.raises(ConfigError, match="solver.protocol = 'harmonie': use one of cot, fenced, harmony, hermes"):
        KernelConfig.load(None, {"solver.protocol": "harmonie"})


HARMONY_CALL = ("<|channel|>analysis<|message|>Let me compute.<|end|><|start|>assistant<|channel|>analysis to=python "
                "code<|message|>print(6 * 7)")


def test_harmony_calls_python_through_to_python_messages_and_answers_from_the_final_channel(fast_cfg):
    cfg = fast_cfg.override({"solver.protocol": "harmony", "solver.reasoning_effort": "high"})

    def gpt_oss(prompt, req):
        assert not req.skip_special_tokens and "<|call|>" in req.stop
        if "<|start|>python to=assistant" not in prompt:
            # one sample's engine keeps the stop token in the text, the other's stops on it as an end token
            keep = req.seed % 2 == 0
            return GenResult(HARMONY_CALL + ("<|call|>" if keep else ""), 20, "stop" if keep else "eos",
                             "<|call|>" if keep else None)
        out = prompt.rsplit("<|start|>python to=assistant<|channel|>analysis<|message|>", 1)[1].split("<|end|>")[0]
        return GenResult(f"<|channel|>analysis<|message|>So {out}; not \\boxed{{41}}.<|end|><|start|>assistant"
                         f"<|channel|>final<|message|>The answer is \\boxed{{{out}}}.<|return|>", 12, "eos")

    res, engine = _solve(cfg, gpt_oss)
    assert res.answer == 42 and res.code_runs == 2 and res.code_errors == 0  # the analysis's 41 does not vote
    first = engine.prompts[0]
    assert first.startswith("<|start|>system<|message|>") and "Reasoning: high" in first and "## python" in first
    assert "<|start|>developer<|message|># Instructions" in first and first.endswith("<|end|><|start|>assistant")
    assert all(p.count("<|call|><|start|>python to=assistant") == 1 for p in engine.prompts[2:])


def test_harmony_reads_either_header_order_and_ignores_finished_messages():
    harmony = get_protocol("harmony")
    assert harmony.pending_call(HARMONY_CALL) == "print(6 * 7)"
    assert harmony.pending_call("<|start|>assistant to=python<|channel|>analysis code<|message|>x = 1<|call|>") == "x = 1"
    assert harmony.pending_call("<|channel|>analysis<|message|>thinking about to=python<|end|>") is None
    assert harmony.pending_call("<|channel|>final<|message|>\\boxed{3}<|return|>") is None
    assert harmony.answer_text("<|channel|>analysis<|message|>\\boxed{1}<|end|>", "") == ""  # no final: no boxed answer
    assert harmony.answer_text("<|channel|>final<|message|>\\boxed{2}<|return|>", "") == "\\boxed{2}"


def test_each_protocol_says_when_an_answer_is_complete_where_it_reads_answers():
    harmony, fenced, hermes, cot = (get_protocol(n) for n in ("harmony", "fenced", "hermes", "cot"))
    final = "<|channel|>analysis<|message|>maybe \\boxed{1}<|end|><|start|>assistant<|channel|>final<|message|>"
    assert not harmony.answer_complete(final[:40], "")  # a boxed guess in the analysis channel
    assert not harmony.answer_complete(final + "It is \\boxed{\\frac{84}{2}", "")  # still open
    assert harmony.answer_complete(final + "It is \\boxed{\\frac{84}{2}}", "")
    assert not fenced.answer_complete("```python\nprint('\\boxed{3}')", "")  # inside an open code block
    assert fenced.answer_complete("```python\nx = 3\n```\nso \\boxed{3}", "")
    assert fenced.answer_complete("so \\boxed{3}", "") and not fenced.answer_complete("so \\boxed{3", "")
    for p in (hermes, cot):
        assert not p.answer_complete("<think>perhaps \\boxed{3}", "")  # still reasoning
        assert p.answer_complete("<think>done</think>\nThe answer is \\boxed{3}.", "")
    assert not hermes.answer_complete('<tool_call>{"name": "python", "arguments": {"code": "print(\\boxed{3})"}}', "")
    # bounded: a box that runs on past BOXED_SPAN characters is not an answer that closed
    from aimokit.protocols.base import BOXED_SPAN

    assert not cot.answer_complete("\\boxed{" + "{" * 10 ** 6 + "}" * 10 ** 6, "")
    assert not cot.answer_complete("\\boxed{" + "1" * BOXED_SPAN + "}", "")


def test_a_sample_stops_when_its_answer_closes_if_stop_at_answer_is_on(fast_cfg):
    def gpt_oss(prompt, req):
        return GenResult("<|channel|>final<|message|>It is \\boxed{42}. Let me also restate the whole argument at "
                         "length before I stop.<|return|>", 30, "eos")

    for on in (False, True):
        cfg = fast_cfg.override({"solver.protocol": "harmony", "solver.stop_at_answer": on})
        res, engine = _solve(cfg, gpt_oss)
        assert res.answer == 42
        texts = [r["response"] for r in res.responses]
        if on:
            assert all(t.endswith("\\boxed{42}") for t in texts) and res.tokens < 2 * 30
        else:
            assert all(t.endswith("<|return|>") for t in texts) and res.tokens == 2 * 30


def test_the_harmony_prompt_becomes_gpt_oss_special_tokens_with_the_models_own_tokenizer(tmp_path):
    """The text renderer needs no vocabulary file: a tokenizer that carries the special tokens maps them."""
    from transformers import AutoTokenizer

    from aimokit.config import CompetitionConfig, SamplingConfig
    from aimokit.models import embedded_default_model
    from aimokit.protocols.harmony import SPECIAL

    tok = AutoTokenizer.from_pretrained(embedded_default_model())
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL)})  # as gpt-oss's tokenizer has them
    text = get_protocol("harmony").prompt(None, "What is 6 * 7?", SamplingConfig(protocol="harmony"), CompetitionConfig())
    ids = tok.encode(text, add_special_tokens=False)
    start = tok.convert_tokens_to_ids("<|start|>")
    assert ids[0] == start and ids.count(start) == 4  # system, developer, user, assistant
    assert tok.decode(ids, skip_special_tokens=False) == text
