"""The vLLM backend's pieces that need no engine: the shape sweep's plan and the entropies read from vLLM's
flat logprobs (its own `FlatLogprobs`, which the backend asks for so the garbage collector has less to walk)."""

from __future__ import annotations

import math

import pytest

from aimokit.config import ConfigError, EngineConfig
from aimokit.engine import vllm_warmup
from aimokit.engine.types import entropy_of


def test_the_sweep_covers_every_power_of_two_and_its_odd_neighbour_up_to_the_step_budget():
    assert vllm_warmup.token_counts(64) == [1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64]
    counts = vllm_warmup.token_counts(8192)
    assert counts[-1] == 8192 and all(2 ** k in counts and (k < 1 or 2 ** k + 1 in counts) for k in range(13))


def test_past_the_cuda_graphs_the_sweep_covers_every_multiple_of_the_alignment():
    counts = vllm_warmup.token_counts(4096, align=32, above=1024)
    assert set(range(1056, 4097, 32)) <= set(counts)  # each a kernel of its own for gpt-oss's MoE routing
    # ... and the count below each: the same rounded length, the other divisibility-by-16 variant
    assert set(range(1055, 4096, 32)) <= set(counts) and all(n % 16 for n in range(1055, 4096, 32))
    # ... and eight below: the count not divisible by 16 while the MoE's gathered rows (4 experts each) are
    assert set(range(1048, 4089, 32)) <= set(counts) and all(n % 16 and not 4 * n % 16 for n in range(1048, 4089, 32))
    assert not [n for n in counts if n <= 1024 and n not in vllm_warmup.token_counts(1024)]  # graphs pad those
    assert counts == sorted(set(counts)) and counts[-1] == 4096
    assert vllm_warmup.token_counts(100, align=32, above=40) == sorted(
        {1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 56, 63, 64, 65, 88, 95, 96})
    assert 31 not in vllm_warmup.token_counts(64, align=32, above=32)  # nothing at or under the graphs' size added
    assert vllm_warmup.token_counts(64, align=0, above=0) == vllm_warmup.token_counts(64)  # 0: powers of two only


def test_the_largest_graph_step_is_read_from_vllms_compilation_config():
    pytest.importorskip("vllm")
    from types import SimpleNamespace

    from vllm.config.compilation import CUDAGraphMode

    from aimokit.engine import vllm_internals

    def engine(mode, sizes):
        cc = SimpleNamespace(cudagraph_mode=mode, cudagraph_capture_sizes=sizes)
        return SimpleNamespace(vllm_config=SimpleNamespace(compilation_config=cc))

    assert vllm_internals.largest_graph_step(engine(CUDAGraphMode.FULL_AND_PIECEWISE, [1, 2, 4, 512, 1024])) == 1024
    assert vllm_internals.largest_graph_step(engine(CUDAGraphMode.PIECEWISE, [8, 16])) == 16
    # prefill-bearing steps never run in a graph: every length is its own
    assert vllm_internals.largest_graph_step(engine(CUDAGraphMode.FULL_DECODE_ONLY, [1, 2, 4])) == 0
    assert vllm_internals.largest_graph_step(engine(CUDAGraphMode.NONE, [1, 2])) == 0
    assert vllm_internals.largest_graph_step(engine(CUDAGraphMode.PIECEWISE, [])) == 0
    assert vllm_internals.largest_graph_step(SimpleNamespace()) == 0  # moved: the whole range swept, with a warning


class _RecordingLLM:
    """Stands in for `vllm.LLM` where only the calls matter: what the sweep asks the engine to run."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        params = params if isinstance(params, list) else [params] * len(prompts)
        self.calls.append([(len(p["prompt_token_ids"]), sp.max_tokens, sp.ignore_eos, sp.logprobs, lora_request)
                           for p, sp in zip(prompts, params)])


def test_the_sweep_runs_each_prefill_alone_then_a_decode_batch_that_shrinks_to_one():
    pytest.importorskip("vllm")
    llm = _RecordingLLM()
    out = vllm_warmup.warm_up(llm, "the-lora", max_num_seqs=6, max_tokens_per_step=16, max_model_len=12, vocab=500)
    prefills, decode = llm.calls[:-1], llm.calls[-1]
    assert [c[0][0] for c in prefills] == [1, 2, 3, 4, 5, 8, 9]  # under the context length (12 - 1)
    assert all(len(c) == 1 and c[0][1] == 1 for c in prefills)  # one request, one token: a prefill-only step
    assert sorted(r[1] for r in decode) == [1, 2, 3, 4, 5, 6] and all(r[2] for r in decode)  # N..1 live
    assert {r[3] for r in decode} == {None, 5} and {r[4] for r in decode + prefills[0]} == {"the-lora"}
    assert out["prefill_lengths"] == 7 and out["decode_batches"] == 6


def test_the_sweep_runs_the_aligned_lengths_past_the_graphs_too():
    pytest.importorskip("vllm")
    llm = _RecordingLLM()
    out = vllm_warmup.warm_up(llm, None, max_num_seqs=2, max_tokens_per_step=64, max_model_len=4096, vocab=500,
                              align=8, above=40)
    lengths = [c[0][0] for c in llm.calls[:-1]]
    assert {47, 48, 55, 56, 63, 64} <= set(lengths) and 40 not in lengths and 39 not in lengths and 24 not in lengths
    assert out["prefill_tokens"] == sum(lengths) and out["align"] == 8 and out["largest_graph_step"] == 40


def test_warm_up_is_auto_on_or_off():
    with pytest.raises(ConfigError, match="warm_up"):
        EngineConfig(backend="vllm", backends={"vllm": {"warm_up": "yes"}})
    with pytest.raises(ConfigError, match=r"warm_up_align = -32: must be >= 0") as bad:
        EngineConfig(backend="vllm", backends={"vllm": {"warm_up_align": -32}})
    assert "max_num_batched_tokens" not in str(bad.value)
    with pytest.raises(ConfigError, match=r"max_num_batched_tokens = -1: must be >= 0 \(0: vLLM's own"):
        EngineConfig(backend="vllm", backends={"vllm": {"max_num_batched_tokens": -1}})


def test_entropies_read_from_flat_logprobs_equal_those_of_the_dict_form():
    pytest.importorskip("vllm")
    from types import SimpleNamespace

    from vllm.logprobs import FlatLogprobs, Logprob

    from aimokit.engine.vllm_outputs import position_entropies

    # a position's run is the sampled token, then the top k; the sampled one repeats when it is among them
    positions = [([7, 7, 3, 9], [-0.1, -0.1, -2.5, -3.0]), ([4, 1, 2, 5], [-4.0, -0.3, -1.6, -2.9])]
    flat, dicts = FlatLogprobs(), []
    for ids, lps in positions:
        flat.append_fast(ids, lps, iter([1] * len(ids)), [None] * len(ids))
        dicts.append({i: Logprob(lp) for i, lp in zip(ids, lps)})
    got = position_entropies(SimpleNamespace(logprobs=flat))
    assert got == pytest.approx(position_entropies(SimpleNamespace(logprobs=dicts)))
    assert got[0] == pytest.approx(entropy_of([-0.1, -2.5, -3.0])) and not math.isclose(got[1], got[0])
    assert position_entropies(SimpleNamespace(logprobs=None)) == []


class _CharTokenizer:
    """One id per character: decoding a slice of ids is exact, as vLLM's detokenizer is for whole tokens."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))

    def encode(self, text, add_special_tokens=False):
        return [ord(ch) for ch in text]


class _DeltaEngine:
    """vLLM's LLMEngine as the backend's step sees it: each step, every request's next delta (several tokens at
    once, as `stream_interval` sends them), and the aborts it was asked for."""

    def __init__(self, deltas: dict[str, list[tuple[str, bool]]]):
        self.deltas, self.aborted = deltas, []

    def step(self):
        from types import SimpleNamespace

        outs = []
        for rid, queue in self.deltas.items():
            if queue and rid not in self.aborted:
                text, finished = queue.pop(0)
                c = SimpleNamespace(text=text, token_ids=[ord(ch) for ch in text], logprobs=None,
                                    finish_reason="stop" if finished else None,
                                    stop_reason="<|call|>" if finished else None)
                outs.append(SimpleNamespace(request_id=rid, outputs=[c], finished=finished))
        return outs

    def abort_request(self, rids):
        self.aborted.extend(rids)


def test_a_delta_of_several_tokens_is_cut_where_its_answer_closed():
    """engine.vllm.stream_interval sends a streamed request's tokens several at a time: the text, tokens and
    entropies come back up to the brace that closed the answer, as one token a step would have stopped them,
    and a request not finished yet is aborted; a stop string in the same delta after the answer is cut too."""
    from aimokit.engine.vllm import VLLMEngine
    from aimokit.engine.vllm_outputs import Request, Streamed
    from aimokit.protocols import get_protocol

    done_when = get_protocol("cot").answer_check("", "")
    eng = object.__new__(VLLMEngine)
    eng.tokenizer = _CharTokenizer()
    eng.engine = _DeltaEngine({
        "a": [("So x = 4 and ", False), ("\\boxed{4}. Then", False), ("more", False)],
        "b": [("first {1} then \\boxed{7}<|call|>", True)],  # answer and a stop string in one final delta
        "c": [("no answer {here}", False), (" at", False), (" all", True)],
    })
    eng._rid, eng._reqs = {}, {}
    for key in "abc":
        eng._rid[key] = key
        eng._reqs[key] = Request(key, True, Streamed(done_when))
    got = dict(eng.step(None))
    assert set(got) == {"b"} and got["b"].text == "first {1} then \\boxed{7}" and got["b"].finish == "answer"
    assert got["b"].n_tokens == len(got["b"].text) and got["b"].token_ids == [ord(ch) for ch in got["b"].text]
    assert eng.engine.aborted == []  # finished: nothing to abort
    got = dict(eng.step(None))
    a = got.pop("a")
    assert a.text == "So x = 4 and \\boxed{4}" and a.finish == "answer" and a.n_tokens == len(a.text)
    assert a.token_ids == [ord(ch) for ch in a.text] and a.stop_str is None
    assert eng.engine.aborted == ["a"] and got == {}  # "c"'s braces close no answer: it runs on
    got = dict(eng.step(None))
    assert got["c"].text == "no answer {here} at all" and got["c"].finish == "stop"


def test_stream_interval_is_checked():
    from aimokit.engine.vllm import VLLMSettings

    with pytest.raises(ConfigError, match=r"stream_interval = 0: must be >= 1"):
        VLLMSettings(stream_interval=0)
    assert VLLMSettings().stream_interval == 16


def test_a_streamed_request_cut_short_keeps_the_tokens_it_had_not_sent_yet():
    """At a deadline or a decided vote, a streamed request has sent all but its last few tokens
    (stream_interval): the abort reads those from vLLM's detokenizer (vllm_internals.partial_output), and keeps
    what was sent where that read disagrees with it."""
    from types import SimpleNamespace

    from aimokit.engine.vllm import VLLMEngine
    from aimokit.engine.vllm_outputs import Request, Streamed

    eng = object.__new__(VLLMEngine)
    eng.tokenizer = _CharTokenizer()
    eng.engine = _DeltaEngine({"a": [("so far", False)], "b": [("so far", False)]})
    full = {"a": "so far and more", "b": "something else"}  # b's read does not extend what it sent
    eng.engine.output_processor = SimpleNamespace(
        external_req_ids={rid: [rid + "-0"] for rid in full},
        request_states={rid + "-0": SimpleNamespace(detokenizer=SimpleNamespace(
            output_token_ids=[ord(ch) for ch in text], output_text=text)) for rid, text in full.items()})
    eng._rid, eng._reqs = {}, {}
    for key in "ab":
        eng._rid[key] = key
        eng._reqs[key] = Request(key, True, Streamed(lambda text: False))
    assert eng.step(None) == []
    eng._reqs["a"].streamed.entropies = [0.5] * 6
    got = eng.abort(["a", "b"])
    assert got["a"].text == "so far and more" and got["a"].n_tokens == 15 and got["a"].finish == "aborted"
    assert got["a"].token_ids == [ord(ch) for ch in "so far and more"] and got["a"].entropies == [0.5] * 6
    assert got["b"].text == "so far" and got["b"].n_tokens == 6
    assert sorted(eng.engine.aborted) == ["a", "b"]


class _FrontEnd:
    """vLLM's real front end (its OutputProcessor, the default model's tokenizer through vLLM's loader) behind
    the two LLMEngine calls the backend makes; no engine core: the test feeds what the core would send."""

    def __init__(self, model_dir):
        from vllm.tokenizers import get_tokenizer
        from vllm.v1.engine.output_processor import OutputProcessor

        self.tokenizer = get_tokenizer(str(model_dir))
        self.output_processor = OutputProcessor(self.tokenizer, log_stats=False)

    def add_request(self, rid, prompt, sp, lora_request=None):
        from vllm.v1.engine import EngineCoreRequest

        self.output_processor.add_request(EngineCoreRequest(
            request_id=f"{rid}-0", prompt_token_ids=prompt["prompt_token_ids"], mm_features=None, sampling_params=sp,
            pooling_params=None, arrival_time=0.0, lora_request=None, cache_salt=None, data_parallel_rank=None,
            external_req_id=rid), None)

    def finish(self, rid, ids):
        """The core's outputs of `ids`, one token a step with a top-2 beside it; the final RequestOutput."""
        import numpy as np
        from vllm.v1.engine import EngineCoreOutput, FinishReason
        from vllm.v1.outputs import LogprobsLists

        out = None
        for i, t in enumerate(ids):
            lp = LogprobsLists(np.array([[t, 100, 200]]), np.array([[-0.5, -0.7, -2.0]], dtype=np.float32),
                               np.array([1]), None)
            done = FinishReason.LENGTH if i == len(ids) - 1 else None
            got = self.output_processor.process_outputs(
                [EngineCoreOutput(request_id=f"{rid}-0", new_token_ids=[t], new_logprobs=lp, finish_reason=done)])
            out = got.request_outputs[-1] if got.request_outputs else out
        return out.outputs[0]


@pytest.mark.parametrize("logprob_text", [False, True])
def test_the_backend_asks_logprob_values_without_each_tokens_text_and_keeps_the_requests_text(default_model,
                                                                                              logprob_text):
    """vLLM decodes the text of every top-k token of every position (a tokenizer call each) unless the request is
    not detokenized at all; the entropy vote reads only the values. Off (the default), the request's logprobs
    processor has no tokenizer while its detokenizer keeps it: the same text, token ids and logprob values."""
    pytest.importorskip("vllm")
    from aimokit.engine.types import GenRequest
    from aimokit.engine.vllm import VLLMEngine

    eng = object.__new__(VLLMEngine)
    eng.engine = front = _FrontEnd(default_model)
    eng.tokenizer, eng.lora, eng.request_seeds, eng._seq, eng._rid, eng._reqs = front.tokenizer, None, False, 0, {}, {}
    eng._logprob_text = logprob_text
    eng.submit("q0", GenRequest("Two plus two is", max_tokens=8, top_logprobs=2))
    state = front.output_processor.request_states["r1-0"]
    assert (state.logprobs_processor.tokenizer is None) is (not logprob_text)
    assert state.detokenizer.tokenizer is not None  # the request's own text is still decoded
    ids = front.tokenizer.encode(" four, so the answer", add_special_tokens=False)
    c = front.finish("r1", ids)
    assert c.text == " four, so the answer" and list(c.token_ids) == ids
    assert c.logprobs.logprobs == pytest.approx([-0.5, -0.7, -2.0] * len(ids))
    assert (c.logprobs.decoded_tokens[0] == " four") is logprob_text
    assert logprob_text or set(c.logprobs.decoded_tokens) == {None}


def test_where_vllms_logprobs_processor_moved_it_decodes_them_as_before_and_says_so_once(caplog):
    pytest.importorskip("vllm")
    from types import SimpleNamespace

    from aimokit.engine import vllm_internals

    vllm_internals._warned.discard("logprob_text")
    moved = SimpleNamespace(output_processor=SimpleNamespace(external_req_ids={}, request_states={}))
    with caplog.at_level("WARNING", logger="aimokit.engine.vllm_internals"):
        assert vllm_internals.logprob_values_only(moved, "r1") is False
        assert vllm_internals.logprob_values_only(SimpleNamespace(), "r2") is False
    assert [r.getMessage() for r in caplog.records].count(
        "could not reach vLLM's logprobs processor of a request: its front end decodes the text of every top-k "
        "logprob token, as vLLM does by default (slower, same values)") == 1
