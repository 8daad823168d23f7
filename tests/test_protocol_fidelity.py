"""Every protocol against its model's real renderer: openai-harmony for gpt-oss, the chat templates TRL ships
(byte copies of Qwen3's, Qwen2.5's and DeepSeek-R1-distill's) for the others, and recorded gpt-oss-120b output.

A protocol in the registry without a reference here fails `test_every_registered_protocol_has_a_reference`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import openai_harmony as h
from aimokit.config import CompetitionConfig, ConfigError, KernelConfig, SamplingConfig
from aimokit.protocols import get_protocol
from aimokit.registry import PROTOCOLS
from aimokit.protocols.harmony_render import PYTHON_TOOL_DESCRIPTION, ReferenceRenderer, TextRenderer, renderer
from layout import ROOT

TEMPLATES = Path(__import__("trl").__file__).parent / "chat_templates"
SHARED_GPT_OSS = ROOT.parent / "shared" / "data" / "tonghuikang-gpt-oss-120b-aimo3var_imo.jsonl"
AIMO3 = CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)
REFERENCED = {"harmony", "hermes", "cot", "fenced"}  # each has its reference tests below


def test_every_registered_protocol_has_a_reference():
    assert set(PROTOCOLS.names()) == REFERENCED, "a new protocol needs a reference-renderer test in this file"


# -- harmony: openai-harmony is the reference ---------------------------------------------------------

@pytest.fixture(scope="module")
def ref() -> ReferenceRenderer:
    return ReferenceRenderer()  # oss-harmony (a vLLM dependency) carries the o200k vocabulary: no download


def _assistant(text: str, channel: str, to: str = "", ctype: str = "") -> h.Message:
    m = h.Message.from_role_and_content(h.Role.ASSISTANT, text).with_channel(channel)
    if to:
        m = m.with_recipient(to)
    return m.with_content_type(ctype) if ctype else m


def _tool(text: str, channel: str) -> h.Message:
    return h.Message.from_author_and_content(h.Author.new(h.Role.TOOL, "python"), text).with_channel(channel) \
        .with_recipient("assistant")


def _model_writes(ref: ReferenceRenderer, m: h.Message, first: bool) -> str:
    """An assistant message as the model writes it in a completion: its own rendering (the first of a round
    without the `<|start|>assistant` the prompt or the tool reply already holds); a final ends in <|return|>."""
    text = ref.enc.decode(ref.enc.render(m))[len("<|start|>assistant") if first else 0:]
    return text[:-len("<|end|>")] + "<|return|>" if m.channel == "final" and text.endswith("<|end|>") else text


NO_OUTPUT = "(no output; use print() to see values)"
CONVERSATIONS = [
    # (effort, developer instructions, [(channel, body, recipient) ... after the user message]; "tool" replies)
    ("low", "", []),
    ("medium", "Put the final answer in \\boxed{}.", [("analysis", "Think.", ""), ("final", "\\boxed{3}", "")]),
    ("high", "Use the python tool.", [("analysis", "Let me compute.", ""), ("analysis", "print(6*7)", "python"),
                                      ("tool", "42\n", "analysis"), ("analysis", "So 42.", ""),
                                      ("final", "The answer is \\boxed{42}.", "")]),
    ("high", "Be brief.", [("commentary", "x = 2\nprint(x ** 10)", "python"), ("tool", "1024", "commentary"),
                           ("analysis", "Second round.", ""), ("analysis", "print(x)", "python"),
                           ("tool", "", "analysis"), ("final", "\\boxed{1024}", "")]),
]


@pytest.mark.parametrize("effort,instructions,turns", CONVERSATIONS)
def test_harmony_text_renders_the_same_token_ids_as_openai_harmony(ref, effort, instructions, turns):
    """The reference renders the conversation for completion after every tool reply; the kit's text there (its
    prompt, the model's messages as it writes them, each tool reply through the protocol on the call's own
    channel) has identical token ids, and the reference parser reads the kit's last round back."""
    user = "What is 6 * 7?"
    system = h.SystemContent.new().with_reasoning_effort(h.ReasoningEffort(effort.capitalize())) \
        .with_tools(h.ToolNamespaceConfig.python())
    dev = h.DeveloperContent.new().with_instructions(instructions) if instructions else h.DeveloperContent.new()
    msgs = [h.Message.from_role_and_content(h.Role.SYSTEM, system),
            h.Message.from_role_and_content(h.Role.DEVELOPER, dev), h.Message.from_role_and_content(h.Role.USER, user)]
    harmony = get_protocol("harmony", SamplingConfig(protocol="harmony", harmony_renderer="text",
                                                     reasoning_effort=effort))
    prompt = TextRenderer().prompt(effort, instructions, user)
    assert ref.encode(prompt) == ref.enc.render_conversation_for_completion(
        h.Conversation.from_messages(msgs), h.Role.ASSISTANT)
    completion, last_round, round_at = "", len(msgs), 0
    for channel, body, to in turns:
        if channel == "tool":
            msgs.append(_tool(body or NO_OUTPUT, to))
            completion += harmony.tool_result(completion, body)
            last_round, round_at = len(msgs), len(completion)
            assert ref.encode(prompt + completion) == ref.enc.render_conversation_for_completion(
                h.Conversation.from_messages(msgs), h.Role.ASSISTANT)
            continue
        msg = _assistant(body, channel, to, "code" if to and channel == "analysis" else "")
        msgs.append(msg)
        completion += _model_writes(ref, msg, completion == "" or completion.endswith("<|start|>assistant"))
    if not turns:
        return
    round_text = completion[round_at:]
    parsed = ref.enc.parse_messages_from_completion_tokens(ref.encode(round_text), h.Role.ASSISTANT)
    assert [m.content[0].text for m in parsed] == [m.content[0].text for m in msgs[last_round:]]


def test_the_reference_and_the_text_renderer_write_the_same_prompts_and_replies(ref):
    text = TextRenderer()
    for effort in ("low", "medium", "high"):
        for instr in ("", "Use the python tool. Put the final answer in \\boxed{}."):
            user = "Find $x$ with $x^2 = 4$ (answer in 0..99999)."
            assert ref.prompt(effort, instr, user) == text.prompt(effort, instr, user)
    for channel in ("analysis", "commentary", "final"):
        for out in ("42\n", "Traceback (most recent call last):\n  ...", "<|end|> printed by code"[:9] + "x"):
            assert ref.tool_reply(channel, out) == text.tool_reply(channel, out)


def test_the_python_tool_is_described_in_the_words_gpt_oss_was_trained_on():
    assert PYTHON_TOOL_DESCRIPTION == h.ToolNamespaceConfig.python().description
    assert "Internet access for this session is UNKNOWN. Depends on the cluster." in PYTHON_TOOL_DESCRIPTION


def test_harmony_renders_through_openai_harmony_by_default_and_says_so(caplog):
    renderer.cache_clear()
    with caplog.at_level("INFO"):
        assert renderer("auto").name == "openai_harmony"
    assert "renders through openai_harmony" in caplog.text
    assert renderer("text").name == "text"


def test_a_commentary_call_is_answered_on_commentary_and_an_analysis_call_on_analysis():
    harmony = get_protocol("harmony")
    commentary = "<|channel|>commentary to=python<|message|>print(1)<|call|>"
    analysis = "<|channel|>analysis to=python code<|message|>print(1)<|call|>"
    assert harmony.tool_result(commentary, "1").startswith("<|start|>python<|channel|>commentary to=assistant")
    assert harmony.tool_result(analysis, "1").startswith("<|start|>python to=assistant<|channel|>analysis")
    assert harmony.tool_result(analysis[:-len("<|call|>")], "1").startswith("<|call|><|start|>python to=assistant")


# -- prompts: each protocol's own instructions ---------------------------------------------------------

def test_each_protocol_asks_for_the_format_it_runs():
    from fakes import ScriptedEngine

    engine = ScriptedEngine(lambda p, r: None)
    texts = {name: get_protocol(name).prompt(engine, "What is 6 * 7?", SamplingConfig(protocol=name), AIMO3)
             for name in PROTOCOLS.names()}
    assert "```python" in texts["fenced"] and "```output" in texts["fenced"]
    for name in ("harmony", "hermes"):
        assert "```" not in texts[name] and "python tool" in texts[name]
    assert "```" not in texts["cot"] and "python" not in texts["cot"]
    for text in texts.values():  # the range is stated everywhere (AIMO-3's 2nd place's biggest gain)
        assert "between 0 and 99999" in text


def test_a_recipe_cannot_send_instructions_for_a_format_its_protocol_does_not_run():
    for protocol in ("harmony", "hermes", "cot"):
        with pytest.raises(ConfigError, match=f"solver.prompt = 'tir' asks for a format the {protocol} protocol"):
            SamplingConfig(protocol=protocol, prompt="tir")
    SamplingConfig(protocol="harmony", prompt="cot")  # asks for no code at all: fits any protocol
    for path in sorted((ROOT / "configs").glob("*.toml")):
        if path.name.startswith(("ship", "train", "dpo")):
            continue
        cfg = KernelConfig.load(path)
        assert not cfg.solver.prompt or cfg.solver.prompt in ("cot",) or cfg.solver.protocol == "fenced", path


# -- hermes, cot, fenced: the model's own chat template, byte for byte ---------------------------------

class _Templated:
    """An engine's one chat call on a tokenizer carrying one of TRL's template copies."""

    def __init__(self, template: str):
        from transformers import AutoTokenizer

        from aimokit.models import embedded_default_model

        self.tok = AutoTokenizer.from_pretrained(embedded_default_model())
        self.tok.chat_template = (TEMPLATES / template).read_text()

    def chat_prompt(self, messages, tools=None):
        from aimokit.engine.chat import apply_chat_template

        return apply_chat_template(self.tok, messages, tools)

    def render(self, messages, tools=None, add_generation_prompt=True):
        kw = {"tools": tools} if tools else {}
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                            **kw)


@pytest.mark.parametrize("template", ["qwen3.jinja", "qwen2_5.jinja"])
def test_hermes_rounds_are_the_chat_templates_own_text(template):
    from aimokit.prompts import user_message
    from aimokit.protocols.hermes import TOOL

    engine, cfg = _Templated(template), SamplingConfig(protocol="hermes")
    hermes = get_protocol("hermes", cfg)
    prompt = hermes.prompt(engine, "What is 6 * 7?", cfg, AIMO3)
    msgs = [{"role": "user", "content": user_message("What is 6 * 7?", cfg, AIMO3, "tool")}]
    assert prompt == engine.render(msgs, [TOOL])
    text = ""
    thinks = template.startswith("qwen3")
    for i, (code, out) in enumerate([("print(6 * 7)", "42"), ("x = 2\nprint(x ** 10)", "1024")]):
        call = {"name": "python", "arguments": {"code": code}}
        turn = {"role": "assistant", "content": f"Round {i}.", "tool_calls": [{"type": "function", "function": call}]}
        if thinks:
            turn["reasoning_content"] = f"thinking {i}"
        msgs += [turn, {"role": "tool", "content": out}]
        rendered = engine.render(msgs[:-1], [TOOL], add_generation_prompt=False)
        written = rendered[len(engine.render(msgs[:-2], [TOOL])):]  # the assistant turn as the template has it
        assert written.endswith("</tool_call><|im_end|>\n")
        text += written[:-len("<|im_end|>\n")]  # the model stops at </tool_call> (the protocol's stop string)
        assert hermes.pending_call(text[text.rfind("<tool_call>"):]) == code
        text += hermes.tool_result(text, out)
        assert prompt + text == engine.render(msgs, [TOOL]), f"round {i} differs from {template}"


def test_r1_distill_opens_the_reasoning_in_the_prompt_and_cot_reads_no_answer_inside_it():
    engine, cfg = _Templated("deepseek_r1_distill.jinja"), SamplingConfig(protocol="cot")
    cot = get_protocol("cot", cfg)
    prompt = cot.prompt(engine, "What is 6 * 7?", cfg, AIMO3)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    cut = "Maybe \\boxed{41}? Let me check"  # cut before </think>: a guess in the reasoning
    assert cot.answer_text(cut, prompt) == "" and not cot.answer_complete(cut, prompt)
    assert not cot.answer_check(prompt, "")(cut)  # what the engine asks as the sample streams
    done = cut + " again.\n</think>\n\nThe answer is \\boxed{42}."
    assert cot.answer_text(done, prompt).strip().endswith("\\boxed{42}.") and cot.answer_complete(done, prompt)
    assert cot.answer_at(done, prompt) == "answer"


def test_a_qwen3_sample_cut_inside_its_thinking_votes_no_boxed_guess(fast_cfg):
    from fakes import ScriptedEngine

    from aimokit.engine import GenResult
    from aimokit.problems import Problem
    from aimokit.solver import Solver

    cfg = fast_cfg.override({"solver.protocol": "hermes", "solver.stop_at_answer": True})
    engine = ScriptedEngine(lambda p, r: GenResult("<think>It might be \\boxed{41}, or more", 30, "length"))
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition)
    try:
        res = solver.solve([Problem("p", "What is 6 * 7?", 42)], samples=2, keep_responses=True)[0]
    finally:
        solver.close()
    assert res.answered == 0 and all(r["answer_at"] == "" for r in res.responses)


@pytest.mark.parametrize("name", sorted(REFERENCED - {"harmony"}))
def test_a_box_in_code_or_tool_output_is_no_answer(name):
    p = get_protocol(name)
    code = {"fenced": "```python\nprint('\\\\boxed{7}')\n```\n```output\n\\boxed{7}\n```\n",
            "hermes": '<tool_call>\n{"name": "python", "arguments": {"code": "print(\\"\\\\\\\\boxed{7}\\")"}}\n'
                      '</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n\\boxed{7}\n</tool_response>'
                      '<|im_end|>\n<|im_start|>assistant\n',
            "cot": ""}[name]
    assert "\\boxed{7}" not in p.answer_text(code + "Done.", "")
    assert p.answer_text(code + "So \\boxed{8}.", "").strip().endswith("\\boxed{8}.")


# -- answers where the model writes them: harmony ------------------------------------------------------

def test_the_winners_rule_reads_every_channel_the_default_only_final():
    text = ("<|channel|>analysis<|message|>Thus answer is \\boxed{15245}<|end|>"
            "<|start|>assistant<|channel|>analysis to=python code<|message|>print('\\\\boxed{1}')<|call|>")
    final = get_protocol("harmony")
    anywhere = get_protocol("harmony", SamplingConfig(protocol="harmony", answer_region="anywhere"))
    assert final.answer_text(text, "") == ""
    assert "15245" in anywhere.answer_text(text, "") and "boxed{1}" not in anywhere.answer_text(text, "")
    assert anywhere.answer_at(text, "") == "analysis"
    assert anywhere.answer_complete("<|channel|>analysis<|message|>So \\boxed{12}", "")
    assert not final.answer_complete("<|channel|>analysis<|message|>So \\boxed{12}", "")
    assert not anywhere.answer_complete("<|channel|>analysis<|message|>put it in \\boxed{}", "")  # empty: no answer
    assert KernelConfig.load(ROOT / "configs" / "aimo3-gpt-oss-120b.toml").solver.answer_region == "anywhere"


def _gpt_oss_120b_samples():
    if not SHARED_GPT_OSS.exists():
        pytest.skip(f"{SHARED_GPT_OSS} not beside this checkout")
    for line in SHARED_GPT_OSS.open():
        d = json.loads(line)
        for s in d["samples"]:
            yield d["id"], s


def test_recorded_gpt_oss_120b_answers_read_as_the_source_read_them_under_the_winners_rule():
    """502 real gpt-oss-120b completions (the last 16,000 characters of each): the reader under the winners'
    rule reads the source's own answer on every one, and parses every tool call and tool reply in the text."""
    from aimokit.answers import extract_answer
    from aimokit.protocols.harmony_read import read

    harmony = get_protocol("harmony", SamplingConfig(protocol="harmony", answer_region="anywhere"))
    # the source kept out-of-range answers (121818 on a 0-99999 problem): compare the reading, not the range
    WIDE = CompetitionConfig(name="wide", answer_max=10 ** 12, modulo=0)
    n = 0
    for pid, s in _gpt_oss_120b_samples():
        text = s["response"]
        got = extract_answer(harmony.answer_text(text, ""), [], WIDE).answer
        assert got == int(s["answer"]), (pid, s["extra"]["source_file"])
        msgs = read(text)
        calls = [m for m in msgs if m.end == "<|call|>"]
        assert text.count("<|call|>") == len(calls) and all(m.is_python_call for m in calls), pid
        # every call whose header is in the text (the first message may be cut from its start) is addressed so
        headed = [m for m in calls if m.start > 0 or text.startswith(("<|channel|>", "<|start|>"))]
        assert all("to=python" in text[m.start:m.body_at] or "a call with no recipient" in m.recovered
                   for m in headed), pid
        replies = [m for m in msgs if m.role == "python"]
        assert len(replies) == text.count("<|start|>python to=assistant"), pid
        assert all(m.recipient == "assistant" and m.channel == "analysis" for m in replies), pid
        assert all(m.end == "<|end|>" for m in replies if m is not msgs[-1]), pid  # the last may be cut
        n += 1
    assert n == 502


# -- malformed output: read as far as it goes ------------------------------------------------------------

HOSTILE = {
    "garbled header": ("<|channel|>fi nal<|constrain|><|constrain|>x y z<|message|>\\boxed{5}<|return|>", None),
    "no <|message|>": ("<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>final \\boxed{6}"
                       "<|return|>", 6),
    "<|return|> after a call": ("<|channel|>analysis to=python code<|message|>print(1)<|return|>", None),
    "<|constrain|> in a final": ("<|channel|>final <|constrain|>json<|message|>\\boxed{7}<|return|>", 7),
    "cut mid-header": ("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>fin", None),
    "cut mid-box": ("<|channel|>final<|message|>\\boxed{12", None),
    "two finals": ("<|channel|>final<|message|>\\boxed{1}<|end|><|start|>assistant<|channel|>final<|message|>"
                   "\\boxed{2}<|return|>", 2),
    "no end before start": ("<|channel|>final<|message|>\\boxed{9}<|start|>assistant<|channel|>analysis<|message|>"
                            "more", 9),
    "stray end tokens": ("<|end|><|end|><|call|><|return|><|message|><|message|>", None),
    "unknown role": ("<|start|>robot<|channel|>final<|message|>\\boxed{3}<|end|>", None),
    "header flood": ("<|start|>" + "assistant " * 10_000 + "<|channel|>final<|message|>\\boxed{4}", 4),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_malformed_harmony_is_read_as_far_as_it_goes_and_never_raises(case):
    from aimokit.answers import extract_answer
    from aimokit.protocols.harmony_read import read

    text, expected = HOSTILE[case]
    harmony = get_protocol("harmony")
    before = harmony.recovered
    got = extract_answer(harmony.answer_text(text, ""), [], AIMO3).answer
    assert got == expected
    harmony.pending_call(text), harmony.answer_complete(text, ""), harmony.tool_result(text, "x")
    if case not in ("two finals", "<|constrain|> in a final", "cut mid-box"):
        assert harmony.recovered == before + 1 and any(m.recovered for m in read(text))
    if case == "<|return|> after a call":
        assert harmony.pending_call(text) == "print(1)"  # the call is still run


def test_openai_harmony_parses_what_the_reader_reads_on_well_formed_text(ref):
    """Where the reference parser succeeds, it and the reader see the same messages."""
    from aimokit.protocols.harmony_read import read

    text = ("<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>analysis to=python code<|message|>"
            "print(1)<|call|><|start|>python to=assistant<|channel|>analysis<|message|>1<|end|>"
            "<|start|>assistant<|channel|>commentary to=python<|message|>x<|call|>"
            "<|start|>python<|channel|>commentary to=assistant<|message|>y<|end|>"
            "<|start|>assistant<|channel|>final<|message|>\\boxed{1}<|return|>")
    theirs = ref.enc.parse_messages_from_completion_tokens(ref.encode(text), h.Role.ASSISTANT)
    ours = read(text)
    assert [(m.author.role.value, m.channel, m.recipient or "", m.content[0].text) for m in theirs] == \
        [(m.role if m.role != "python" else "tool", m.channel, m.recipient, m.body) for m in ours]


# -- rounds end cleanly ---------------------------------------------------------------------------------

def _solve(cfg, respond):
    from fakes import ScriptedEngine

    from aimokit.problems import Problem
    from aimokit.solver import Solver

    engine = ScriptedEngine(respond)
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition)
    try:
        return solver.solve([Problem("p", "What is 6 * 7?", 42)], samples=1, keep_responses=True)[0], engine
    finally:
        solver.close()


CALL = "<|channel|>analysis to=python code<|message|>print(6 * 7)<|call|>"


def test_a_call_past_the_round_limit_is_answered_and_the_model_gets_one_more_turn(fast_cfg):
    """gpt-oss stops at <|call|> whatever it is asked: at the limit the call is answered "tool budget spent"
    (not run), and the next turn answers. Before, the sample ended on the unrun call."""
    from aimokit.engine import GenResult

    cfg = fast_cfg.override({"solver.protocol": "harmony", "solver.max_rounds": 1})

    def gpt_oss(prompt, req):
        assert "<|call|>" in req.stop  # on the last round too
        if "Tool budget spent" in prompt:
            return GenResult("<|channel|>final<|message|>\\boxed{42}<|return|>", 5, "eos")
        return GenResult(CALL, 10, "stop", "<|call|>")

    res, engine = _solve(cfg, gpt_oss)
    (r,) = res.responses
    assert res.answer == 42 and r["code_runs"] == 1 and r["tool_refusals"] == 1 and r["answer_at"] == "final"
    assert r["response"].endswith("<|return|>") and r["response"].count("<|start|>python") == 2


def test_a_loop_of_identical_calls_is_cut_the_same_way(fast_cfg):
    from aimokit.engine import GenResult

    cfg = fast_cfg.override({"solver.protocol": "harmony", "solver.max_rounds": 10, "solver.max_repeat_calls": 3,
                             "solver.max_tokens_total": 4000, "solver.max_tokens_per_round": 100})
    seen = []

    def looping(prompt, req):
        seen.append(prompt)
        if "identical to the 2 before it" in prompt:
            return GenResult("<|channel|>final<|message|>\\boxed{42}<|return|>", 5, "eos")
        return GenResult(CALL, 10, "stop", "<|call|>")

    res, _ = _solve(cfg, looping)
    (r,) = res.responses
    assert r["code_runs"] == 2 and r["tool_refusals"] == 1 and res.answer == 42  # run, run, refused, answered


def test_a_sample_that_calls_again_after_its_last_turn_ends_there(fast_cfg):
    from aimokit.engine import GenResult

    cfg = fast_cfg.override({"solver.protocol": "harmony", "solver.max_rounds": 1,
                             "solver.max_tokens_total": 4000, "solver.max_tokens_per_round": 100})
    res, engine = _solve(cfg, lambda p, r: GenResult(CALL, 10, "stop", "<|call|>"))
    (r,) = res.responses
    assert r["tool_refusals"] == 1 and r["code_runs"] == 1 and engine.calls == 3 and res.answer == 42  # printed


# -- training reads the same region ---------------------------------------------------------------------

def test_grpo_rewards_a_right_harmony_final_answer_with_a_tokenizer_that_has_harmonys_tokens():
    """TRL hands rewards completions decoded with special tokens skipped: from those, no final channel is
    found. The kit's rewards decode TRL's completion_ids with the tokens kept: a right final answer earns 1."""
    from transformers import AutoTokenizer

    from aimokit.models import embedded_default_model
    from aimokit.protocols.harmony import SPECIAL
    from aimokit.rewards import correct, answer_format

    tok = AutoTokenizer.from_pretrained(embedded_default_model())
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL)})
    harmony = get_protocol("harmony")
    texts = ["<|channel|>analysis<|message|>6*7<|end|><|start|>assistant<|channel|>final<|message|>\\boxed{42}"
             "<|return|>", "<|channel|>analysis<|message|>\\boxed{42}<|end|>"]
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    trl_text = [tok.decode(i, skip_special_tokens=True) for i in ids]  # what TRL passes as `completions`
    assert "final" in trl_text[0] and "<|channel|>" not in trl_text[0]
    prompts = ["<|start|>user<|message|>What is 6 * 7?<|end|><|start|>assistant"] * 2
    assert correct(harmony, AIMO3, tokenizer=tok)(prompts, trl_text, answer=[42, 42], completion_ids=ids) == [1.0, 0.0]
    assert answer_format(harmony, tok)(prompts, trl_text, completion_ids=ids) == [1.0, 0.0]
    from aimokit.rewards import RewardError

    with pytest.raises(RewardError, match="needs completion_ids and the tokenizer"):
        correct(harmony, AIMO3)(prompts, trl_text, answer=[42, 42])


# -- SFT/DPO targets: what the model's own training template renders ---------------------------------------

@pytest.mark.parametrize("protocol,template,training", [
    ("hermes", "qwen3.jinja", "qwen3_training.jinja"),
    ("hermes", "qwen2_5.jinja", "qwen2_5_training.jinja"),
    ("cot", "deepseek_r1_distill.jinja", "deepseek_r1_distill_training.jinja"),
    ("fenced", "qwen2_5.jinja", "qwen2_5_training.jinja"),
])
def test_reference_targets_are_what_the_training_template_renders(protocol, template, training):
    from aimokit.engine.chat import template_thinks

    engine, cfg = _Templated(template), SamplingConfig(protocol=protocol)
    p = get_protocol(protocol, cfg)
    prompt = p.prompt(engine, "What is 6 * 7?", cfg, AIMO3)
    solution, answer = "Six sevens are 42.", "42"
    thinks = template_thinks(engine.tok)
    assert thinks == (template != "qwen2_5.jinja")
    target = p.written_solution(prompt, solution, answer, thinks=thinks)
    trainer = _Templated(training)
    user = [{"role": "user", "content": prompt_user(engine, prompt)}]
    turn = {"role": "assistant", "content": "The answer is \\boxed{42}."}
    if thinks:
        turn["reasoning_content"] = solution
        if template.startswith("deepseek"):  # R1's template has no reasoning field: the block is in the content
            turn = {"role": "assistant", "content": f"<think>\n{solution}\n</think>\n\nThe answer is \\boxed{{42}}."}
    else:
        turn["content"] = f"{solution}\n\nThe answer is \\boxed{{42}}."
    from aimokit.protocols.hermes import TOOL

    rendered = trainer.render(user + [turn], [TOOL] if protocol == "hermes" else None, add_generation_prompt=False)
    assert rendered.startswith(prompt)
    end = {"qwen3.jinja": "<|im_end|>\n", "qwen2_5.jinja": "<|im_end|>\n",
           "deepseek_r1_distill.jinja": "<｜end▁of▁sentence｜>"}[template]
    assert rendered[len(prompt):] == target + end
    assert extract_answer_of(p, target, prompt) == 42


def prompt_user(engine: _Templated, prompt: str) -> str:
    from aimokit.prompts import user_message

    return user_message("What is 6 * 7?", SamplingConfig(), AIMO3, "tir" if "```python" in prompt else
                        ("tool" if "python tool" in prompt else "cot"))


def extract_answer_of(p, text: str, prompt: str) -> int | None:
    from aimokit.answers import extract_answer

    return extract_answer(p.answer_text(text, prompt), [], AIMO3).answer


def test_a_harmony_reference_target_is_what_gptoss_training_renders():
    engine = _Templated("gptoss_training.jinja")
    msgs = [{"role": "user", "content": "Q"}, {"role": "assistant", "thinking": "Six sevens are 42.",
                                               "content": "The answer is \\boxed{42}."}]
    rendered = engine.render(msgs, add_generation_prompt=False)
    prompt = engine.render(msgs[:1])
    assert rendered.startswith(prompt)
    target = get_protocol("harmony").written_solution(prompt, "Six sevens are 42.", "42", thinks=True)
    assert rendered[len(prompt):] == target
