"""gpt-oss's tokenizer in Hugging Face's format, built offline from the shipped vocabulary (vocab.py), against
openai-harmony's own encoding: the reference for what gpt-oss reads. The full-size benchmark's model folder
carries it (benchmarks/common.py)."""

from __future__ import annotations

import pytest

import openai_harmony as h
from aimokit import vocab
from aimokit.protocols.harmony_render import TextRenderer

TEXTS = [
    "Find the remainder when $2^{2024}$ is divided by $1000$.",
    "naïve café — 数学 🙂 x²+y²=z² \t\t  \n\n\n  trailing   ",
    "12345678901234567890 3.14159 -0.5e-10 1,000,000",
    "```python\nimport sympy as sp\nprint(sp.factorint(2**64 - 1))\n```\n",
    "<|endoftext|> and <|start|> written as text, <|reserved_200100|>, <|endofprompt|>",
    "I'M SHOUTING'S don't we'll THEY'RE",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(vocab.write_hf_tokenizer(tmp_path_factory.mktemp("o200k")))


@pytest.fixture(scope="module")
def ref():
    return h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)


def test_the_tokenizer_has_gpt_oss_vocabulary_and_its_special_tokens_at_harmony_ids(tok, ref):
    assert len(tok) == 201088  # gpt-oss's vocab_size
    specials = {name: ref.encode(name, allowed_special="all") for name in ref.special_tokens_set}
    # openai-harmony also names <|reserved_201088|>, one id past gpt-oss's 201088 embedding rows: no model input
    beyond = {name for name, ids in specials.items() if ids[0] >= 201088}
    assert beyond == {"<|reserved_201088|>"} and len(specials) == 1091
    for name, ids in specials.items():
        if name not in beyond:
            assert [tok.convert_tokens_to_ids(name)] == ids, name
    assert tok.eos_token == "<|return|>" and tok.pad_token_id == 199999


@pytest.mark.parametrize("text", TEXTS)
def test_text_encodes_to_harmony_ids_and_decodes_back(tok, ref, text):
    ids = ref.encode(text, allowed_special="all")
    assert tok.encode(text, add_special_tokens=False) == ids
    assert tok.decode(ids) == text


def test_the_kits_harmony_prompt_and_tool_reply_encode_as_harmony_does(tok, ref):
    text = TextRenderer()
    prompt = text.prompt("high", "Use the python tool.", TEXTS[0]) + "<|channel|>analysis to=python code" \
        "<|message|>print(2**10)<|call|>" + text.tool_reply("analysis", "1024\n")
    assert tok.encode(prompt, add_special_tokens=False) == ref.encode(prompt, allowed_special="all")
