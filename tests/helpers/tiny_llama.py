"""A tiny random Llama saved with a given tokenizer: what the training tests train (seconds a step on CPU)."""

from pathlib import Path
from typing import Any


def save_tiny_llama(out: Path, tok: Any, max_positions: int = 2048) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=max_positions,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).save_pretrained(out)
    tok.save_pretrained(out)
    return out
