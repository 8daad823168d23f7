"""Warm every batch shape the solver can produce, inside the engine start, so nothing compiles in the timed run.

Why: vLLM's own warm-up compiles the shapes it captures, but Triton kernels outside the CUDA graphs (gpt-oss's
MoE routing, `_combined_routing_compute_pow2`, among them) compile on first sight of a new token count or its
alignment. The solver makes counts plain generation never does: samples re-enter after their tool turns one by
one, so steps of 1-7 requests and prefills of every length mix in. Measured on an H200 (docs/benchmarks.md),
such compiles stalled the engine about 2 s each, inside the timed run, after the single warm-up problem.

The sweep, paid once at start:
- one prefill-only step at each power of two up to the engine's token budget per step, and at each power of
  two plus one (Triton specializes integer arguments on their divisibility by 16), distinct random ids so the
  prefix cache does not shorten them;
- one at every multiple of `align` (32) between the largest CUDA graph step and the budget. Steps up to the
  graphs' size are padded to a captured size, whose kernels vLLM compiled when it captured it; longer ones run
  at their own length. gpt-oss's MoE routing kernels (`_topk_forward`, `_sum_bitmatrix_rows`) take that length
  rounded up to 32 as a constexpr, so each multiple of 32 is a kernel of its own (an H200 met 1,184, 1,376,
  1,408 ... inside evaluate's timed run when the sweep had powers of two only). Triton also specializes the
  count itself on its divisibility by 16, so each multiple m is swept with m - 1 too: a sweep of the multiples
  alone left 1,248, 1,344 and 1,760 to compile again inside evaluate, each as the non-divisible variant (the JIT
  monitor's `(1,): []` against the sweep's `(1,): [['tt.divisibility', 16]]`). And with m - 8: the MoE matmuls
  (`matmul_ogs`' `define_kernel`) also take the gathered row count, the count times the experts per token, whose
  divisibility by 16 differs from the count's own for a count divisible by 8 but not 16 (4 x 1,048 against
  1,048, for gpt-oss's 4 experts; m and m - 1 give both divisible or neither); an H200 compiled such a
  `define_kernel` (BLOCK_M = 64, the 1,056-2,079-token range past the graphs) inside evaluate's timed run in two
  runs with the m, m - 1 sweep. A smaller step budget (`max_num_batched_tokens`) makes this part shorter;
- a decode batch that shrinks by one request per step from `max_num_seqs` to 1 (request i asks for i + 1
  tokens), so every decode batch size occurs;
- both with the kernel's sampling shapes mixed in (plain, top-p / min-p with top logprobs, greedy) and the
  LoRA when there is one.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

log = logging.getLogger(__name__)


def token_counts(max_tokens_per_step: int, align: int = 0, above: int = 0) -> list[int]:
    """Prefill lengths: 1, 2, 3, 4, 5, 8, 9, ... up to the step budget, and every multiple of `align` past
    `above` (the largest CUDA graph step: shorter steps are padded up to a captured size, longer ones run at
    their own length), each with the counts one and eight below it (the divisibility variants)."""
    out, n = set(), 1
    while n <= max_tokens_per_step:
        out |= {n} | ({n + 1} if n + 1 <= max_tokens_per_step and n > 1 else set())
        n *= 2
    if align > 0:  # each multiple, and below it the same rounded length divisible by 8 but not 16, and by neither
        first = (above // align + 1) * align
        out |= {n for m in range(first, max_tokens_per_step + 1, align) for n in (m - 8, m - 1, m) if n > above}
    return sorted(out)


def warm_up(llm: Any, lora: Any, max_num_seqs: int, max_tokens_per_step: int, max_model_len: int,
            vocab: int, align: int = 0, above: int = 0) -> dict[str, Any]:
    """Run the sweep on `llm` (a `vllm.LLM`); what it ran and what it cost."""
    from vllm import SamplingParams

    rng = random.Random(0)
    top = max(2, min(vocab, 100_000))  # ordinary tokens: the special ones sit at the end of the vocabularies

    def ids(n: int) -> dict:
        return {"prompt_token_ids": [rng.randrange(1, top) for _ in range(n)]}

    shapes = [dict(temperature=1.0), dict(temperature=1.0, top_p=0.95, min_p=0.02, logprobs=5),
              dict(temperature=0.0)]
    t = time.monotonic()
    lengths = [n for n in token_counts(max_tokens_per_step, align, above) if n < max_model_len - 1]
    for i, n in enumerate(lengths):  # one at a time: each is a step of exactly n tokens
        llm.generate([ids(n)], SamplingParams(max_tokens=1, ignore_eos=True, **shapes[i % len(shapes)]),
                     lora_request=lora, use_tqdm=False)
    prefill_s = time.monotonic() - t
    batch = [ids(16) for _ in range(max_num_seqs)]
    params = [SamplingParams(max_tokens=i + 1, ignore_eos=True, **shapes[i % len(shapes)])
              for i in range(max_num_seqs)]
    llm.generate(batch, params, lora_request=lora, use_tqdm=False)
    out = {"prefill_lengths": len(lengths), "longest_prefill": max(lengths, default=0), "align": align,
           "largest_graph_step": above, "prefill_tokens": sum(lengths),
           "decode_batches": max_num_seqs, "prefill_s": round(prefill_s, 2),
           "seconds": round(time.monotonic() - t, 2)}
    log.info("engine warm-up: %d prefill lengths up to %d tokens (every %d past the CUDA graphs' %d), decode "
             "batches %d..1, in %.1f s", out["prefill_lengths"], out["longest_prefill"], align, above,
             max_num_seqs, out["seconds"])
    return out
