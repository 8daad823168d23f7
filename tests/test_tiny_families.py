"""Tiny random gpt-oss and Qwen3 models, built here from transformers configs with tokenizers that carry each
family's special tokens, run through the real solver and engine (transformers backend) with their protocol.

A random model writes no tool calls (the scripted tests in test_protocols.py drive those); what this shows is
the plumbing a real model of the family goes through: the prompt becomes the family's special tokens, special
tokens survive in the text when the protocol reads them, and entropies come back for every generated token.
"""

import pytest

from aimokit.config import KernelConfig

FAMILIES = {
    "gpt-oss": ("harmony", ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>",
                            "<|constrain|>"]),
    "qwen3": ("hermes", ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>",
                         "</tool_response>", "<think>", "</think>"]),
}


def _tiny(family: str, out):
    import torch
    from transformers import AutoTokenizer, GptOssConfig, GptOssForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from aimokit.models import embedded_default_model

    tok = AutoTokenizer.from_pretrained(embedded_default_model())
    tok.add_special_tokens({"additional_special_tokens": FAMILIES[family][1]})
    common = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    torch.manual_seed(0)
    if family == "gpt-oss":
        model = GptOssForCausalLM(GptOssConfig(intermediate_size=64, num_local_experts=4, num_experts_per_tok=2,
                                               layer_types=["sliding_attention", "full_attention"],
                                               sliding_window=128, **common))
    else:
        model = Qwen3ForCausalLM(Qwen3Config(intermediate_size=128, **common))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_tiny_model_of_the_family_runs_its_protocol_end_to_end(family, tmp_path, fast_cfg):
    from aimokit.engine.hf import TransformersEngine
    from aimokit.problems import Problem
    from aimokit.solver import Solver

    protocol, special = FAMILIES[family]
    model = _tiny(family, tmp_path / family)
    cfg = fast_cfg.override({"engine.backend": "transformers", "engine.model": str(model), "engine.dtype": "float32",
                             "solver.protocol": protocol, "solver.top_logprobs": 3, "solver.max_tokens_per_round": 12,
                             "solver.max_tokens_total": 24, "solver.temperature": 1.0})
    engine = TransformersEngine(cfg.engine, str(model))
    seen = []
    real_generate = engine.generate_batch

    def spy(requests, deadline):
        results = real_generate(requests, deadline)
        seen.extend(zip(requests, results))
        return results

    engine.generate_batch = spy
    solver = Solver(engine, cfg.solver, cfg.sandbox, cfg.competition, max_model_len=4096)
    try:
        res = solver.solve([Problem("p", "What is 6 * 7?", 42)], samples=2, keep_responses=True)[0]
    finally:
        solver.close()
    assert res.samples == 2 and res.tokens > 0
    voted = {r["answer"] for r in res.responses if r["answer"] is not None}
    assert res.answer in (voted or {cfg.competition.fallback_answer})  # the vote's, or the fallback when none
    prompt_ids = engine.tokenizer.encode(seen[0][0].prompt, add_special_tokens=False)
    assert engine.tokenizer.convert_tokens_to_ids(special[0]) in prompt_ids  # the family's tokens, not text
    assert all(r.skip_special_tokens is (protocol != "harmony") for r, _ in seen)
    assert all(len(g.entropies) == g.n_tokens and all(e >= 0 for e in g.entropies) for _, g in seen)
    assert all(row["entropy_mean"] is not None for row in res.responses)
