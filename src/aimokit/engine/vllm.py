"""vLLM `LLM` with optional LoRA, stepped by the shared loop for deadlines and early stop.

Only public engine calls are made here (`add_request`, `abort_request`,
`step`, the tokenizer); the two internals the kit needs live in
`vllm_internals`. `LLMEngine.step()` is driven with FINAL_ONLY outputs, the
way `LLM.generate` drives it, so the control costs nothing extra. A request
that may end at its answer (`done_when`) streams DELTA outputs instead, every
`engine.vllm.stream_interval` tokens: its text is gathered here, checked at
each "}" of new text, cut where its answer closes, and the request aborted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable

from ..config import ConfigError, EngineConfig, setting
from ..registry import BACKENDS
from . import vllm_internals
from .chat import apply_chat_template
from .loop import SteppedEngine
from .types import GenRequest, GenResult
from .vllm_outputs import Request, Streamed, position_entropies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VLLMSettings:
    """[engine.vllm]: what only vLLM understands, passed to `vllm.LLM` under vLLM's own names."""

    gpu_memory_utilization: float = setting(0.90, help="The share of GPU memory vLLM may take for weights and KV cache, in (0, 1].")
    enable_prefix_caching: bool = setting(True, help="Reuse the KV cache of shared prompt prefixes (every sample of a problem shares its prompt).")
    kv_cache_dtype: str = setting("auto", help="vLLM's kv_cache_dtype: auto, or fp8 to fit more sequences.")
    enforce_eager: bool = setting(False, help="Skip CUDA graph capture: a faster start, slower decoding.")
    max_lora_rank: int = setting(0, help="vLLM's max_lora_rank; 0: the adapter's own rank, and never less than it. "
                                         "Larger only for adapters swapped in later: every adapter is padded to it, "
                                         "which costs memory, and on CPU time (vLLM-CPU copies the padded weights "
                                         "per prompt token: rank 64 for a rank-8 adapter made prefill 7.5x slower).")
    stream_interval: int = setting(16, help="vLLM's stream_interval: a request that may end at its answer "
                                            "(solver.stop_at_answer) sends its new tokens every this many, not "
                                            "every step; its text is still cut at the brace that closed the "
                                            "answer, and up to this many - 1 tokens past it are computed and "
                                            "dropped. At 1, the per-step outputs of 256 such requests made each "
                                            "step of gpt-oss-120b's shape on an H200 22% slower than the same "
                                            "requests returned whole (docs/benchmarks.md).")
    logprob_text: bool = setting(False, help="Decode the text of each top-k logprob token in vLLM's front end, as "
                                             "vLLM does by default. The kit reads only their values (the entropy "
                                             "vote), and that decode is a tokenizer call per top-k token per "
                                             "position, most of the front end's output processing at top-5 "
                                             "(docs/benchmarks.md). Off: a request's logprobs keep their values "
                                             "and no text, its own text is decoded as before "
                                             "(engine/vllm_internals.py; where vLLM moved, it decodes them and the "
                                             "log says so).")
    max_num_batched_tokens: int = setting(0, help="vLLM's token budget per engine step; 0: vLLM's own default "
                                                  "(16,384 for an offline LLM on an H200). The shape sweep covers "
                                                  "every step length up to it, so a smaller budget is a shorter "
                                                  "sweep; decoding steps are at most max_num_seqs tokens anyway.")
    warm_up: str = setting("auto", help="on: at start, run every batch shape the solver can produce (prefills of "
                                        "each power of two up to the step's token budget, and of every multiple "
                                        "of warm_up_align above vLLM's largest CUDA graph; decode batches from "
                                        "max_num_seqs down to 1), so kernels that compile per shape do it inside "
                                        "the start and not in a problem's time (engine/vllm_warmup.py); auto: on, "
                                        "except on a CPU, where vLLM compiles no kernels at run time (the log "
                                        "says so); off.")
    warm_up_align: int = setting(32, help="The sweep also runs a prefill of every multiple of this many tokens "
                                          "between vLLM's largest CUDA graph size and the step budget, and of the "
                                          "count one below each: steps there run outside the graphs at their own "
                                          "length, and gpt-oss's MoE routing kernels (_topk_forward, "
                                          "_sum_bitmatrix_rows) compile once per length rounded up to 32 and per "
                                          "divisibility of the count by 16 (seen on an H200 as 1-2 s stalls "
                                          "inside evaluate). 0: powers of two only.")
    freeze_gc: bool = setting(True, help="After the start, move every object alive then (the model's config, "
                                         "the tokenizer's tables, the warm-up's garbage collected first) out of "
                                         "the garbage collector's reach, so its full passes between engine "
                                         "steps walk only the run's own objects.")
    compile_cache: str = setting("", help="A compile cache an earlier run saved (compile_cache_save), shipped as a "
                                          "dataset ($AIMOKIT_COMPILE_CACHE/<kernel> once `build` ships the ship "
                                          "config's [[kernels]] compile_cache): copied to a writable folder and "
                                          "vLLM, Triton and FlashInfer pointed at it, so the start loads compiled "
                                          "kernels instead of compiling (gpt-oss-120b's shape on an H200, the "
                                          "recipe's sweep: 495 s cold, 209 s from a shipped copy). Empty: "
                                          "none (engine/compile_cache.py).")
    compile_cache_save: str = setting("", help="A folder this run's compile cache is kept in, whole once the start "
                                               "(warm-up included) is done and its manifest written: on Kaggle "
                                               "/kaggle/working/aimokit-compile-cache, so `build.py output` fetches "
                                               "it for the next push. Empty: a temporary folder, not kept.")
    compile_cache_mismatch: str = setting("compile", help="A compile cache made under another vLLM, torch or "
                                                          "device: compile, set it aside and compile afresh (the log "
                                                          "says so); fail, stop the start with the reason.")
    extra: dict[str, Any] = setting(default_factory=dict, help="Extra keyword arguments passed verbatim to vllm.LLM "
                                                               "(a $AIMOKIT_INPUT/... path among them is checked "
                                                               "against the kernel's inputs).")

    def __post_init__(self) -> None:
        if self.warm_up not in ("auto", "on", "off"):
            raise ConfigError(f"engine.vllm.warm_up = {self.warm_up!r}: use auto, on or off")
        if self.compile_cache_mismatch not in ("compile", "fail"):
            raise ConfigError(f"engine.vllm.compile_cache_mismatch = {self.compile_cache_mismatch!r}: use compile or fail")
        if self.compile_cache and self.compile_cache == self.compile_cache_save:
            raise ConfigError("engine.vllm.compile_cache and compile_cache_save name one folder: the seed is copied "
                              "into the save folder, so give the save its own (or leave compile_cache empty to "
                              "reuse the folder in place)")
        for name, meaning in (("warm_up_align", "no aligned sweep"), ("max_num_batched_tokens", "vLLM's own budget")):
            if getattr(self, name) < 0:
                raise ConfigError(f"engine.vllm.{name} = {getattr(self, name)}: must be >= 0 (0: {meaning})")
        if self.stream_interval < 1:
            raise ConfigError(f"engine.vllm.stream_interval = {self.stream_interval}: must be >= 1 (1: every step)")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError("engine.vllm.gpu_memory_utilization must be in (0, 1]")
        from ..adapters import VLLM_LORA_RANKS

        if self.max_lora_rank and self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ConfigError(f"engine.vllm.max_lora_rank = {self.max_lora_rank}: vLLM accepts "
                              f"{', '.join(map(str, VLLM_LORA_RANKS))}, or 0 for the adapter's own rank")


@BACKENDS.register()
class VLLMEngine(SteppedEngine):
    name = "vllm"
    library = "vllm"  # what must import for this backend to start (create_engine checks it first)
    requirements = ("vllm==0.26.0",)  # what a Kaggle image lacks to run it: 0.26 pins torch 2.11, the image's
    Settings = VLLMSettings

    def __init__(self, cfg: EngineConfig, model_dir: str, clock: Callable[[], float] | None = None):
        super().__init__(clock or time.monotonic)
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        own: VLLMSettings = cfg.section(self.name)
        self._logprob_text = own.logprob_text
        kwargs: dict[str, Any] = dict(
            model=model_dir,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=own.gpu_memory_utilization,
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_num_seqs=cfg.max_num_seqs,
            enable_prefix_caching=own.enable_prefix_caching,
            kv_cache_dtype=own.kv_cache_dtype,
            enforce_eager=own.enforce_eager,
            stream_interval=own.stream_interval,
            seed=cfg.seed,
        )
        if own.max_num_batched_tokens:
            kwargs["max_num_batched_tokens"] = own.max_num_batched_tokens
        if cfg.lora:
            from ..adapters import adapter_rank

            kwargs.update(enable_lora=True, max_lora_rank=max(own.max_lora_rank, adapter_rank(cfg.lora)))  # 0: its own
        kwargs.update(own.extra)
        from . import compile_cache

        started = self.clock()
        cache = compile_cache.prepare(own.compile_cache, own.compile_cache_save, own.compile_cache_mismatch)
        self.llm = LLM(**kwargs)
        self.engine = self.llm.llm_engine
        self.tokenizer = self.llm.get_tokenizer()
        self.lora = LoRARequest("adapter", 1, str(Path(cfg.lora).resolve())) if cfg.lora else None
        # vLLM-CPU crashes ("CPU Generator does not use offset") when a seeded request's prefill is
        # chunked; there the engine-wide seed has to do, and requests go unseeded.
        from vllm.platforms import current_platform

        self.request_seeds = not current_platform.is_cpu()
        self.warm_up = None
        if own.warm_up == "auto" and current_platform.is_cpu():
            log.info("engine.vllm.warm_up = auto: no shape sweep on a CPU (vLLM compiles no kernels there at run time)")
        elif own.warm_up != "off":
            from .vllm_warmup import warm_up

            self.warm_up = warm_up(self.llm, self.lora, cfg.max_num_seqs, vllm_internals.max_tokens_per_step(
                self.engine, cfg.max_model_len), cfg.max_model_len, len(self.tokenizer),
                align=own.warm_up_align, above=vllm_internals.largest_graph_step(self.engine))
        # what the start compiled (the sweep's kernels included), and the saved cache's manifest
        self.compile_cache = (cache.finish(self.clock() - started, vllm_internals.compiles(self.engine))
                              if cache is not None else None)
        self._scratch_cache = cache.work if cache is not None and not cache.save else None  # removed at close
        if own.freeze_gc:
            import gc

            gc.collect()
            gc.freeze()
            log.info("froze %d objects out of the garbage collector's passes", gc.get_freeze_count())
        self._seq = 0
        self._rid: dict[Hashable, str] = {}  # the caller's key -> vLLM's request id
        self._reqs: dict[str, Request] = {}  # vLLM's request id -> what this engine keeps of it

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _spelling(self, ids: list[int], text: str, req_skip: bool) -> list[int]:
        """Ids that spell `text`: the generated ones when they decode to it (the usual case, so the next round's
        prompt is exactly what the model wrote and meets the prefix cache), else `text` re-encoded (a stop string
        cut inside a token, or a detokenizer difference): never a context that differs from the recorded text."""
        if ids and self.tokenizer.decode(ids, skip_special_tokens=req_skip) == text:
            return list(ids)
        return self.encode(text)

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
            flat_logprobs=bool(req.top_logprobs),
            skip_special_tokens=req.skip_special_tokens,
            output_kind=RequestOutputKind.DELTA if req.done_when else RequestOutputKind.FINAL_ONLY,
        )
        # Chat templates already carry BOS; do not let the tokenizer add another.
        token_ids = list(req.prompt_ids) if req.prompt_ids is not None else self.encode(req.prompt)
        self.engine.add_request(rid, {"prompt_token_ids": token_ids}, sp, lora_request=self.lora)
        if req.top_logprobs and not self._logprob_text:
            vllm_internals.logprob_values_only(self.engine, rid)
        self._rid[key] = rid
        self._reqs[rid] = Request(key, req.skip_special_tokens, Streamed(req.done_when) if req.done_when else None)

    def abort(self, keys: list[Hashable]) -> dict[Hashable, GenResult]:
        rids = {k: self._rid.pop(k) for k in keys if k in self._rid}
        reqs = {rid: self._reqs.pop(rid) for rid in rids.values()}
        partial = {k: self._streamed_partial(reqs[rid].streamed, rid) if reqs[rid].streamed is not None
                   else vllm_internals.partial_output(self.engine, rid) for k, rid in rids.items()}
        if rids:
            self.engine.abort_request(list(rids.values()))
        return partial

    def step(self, deadline: float | None) -> list[tuple[Hashable, GenResult]]:
        done, answered = [], []
        for out in self.engine.step():
            rid = out.request_id
            req = self._reqs.get(rid)
            if req is None:
                continue
            c = out.outputs[0]
            streamed = req.streamed
            if streamed is not None:
                start, before = len(streamed.text), len(streamed.ids)
                streamed.text += c.text
                streamed.ids.extend(c.token_ids)
                streamed.entropies.extend(position_entropies(c))
                at = streamed.answer_end(start) if "}" in c.text else None
                if at is not None:  # finished in this delta or not, it ended at its answer
                    if not out.finished:
                        answered.append(rid)
                    done.append((self._forget(rid), self._answered(streamed, at, start, before,
                                                                    req.skip_special_tokens)))
                    continue
                if not out.finished:
                    continue
            elif not out.finished:
                continue
            stop_str = c.stop_reason if isinstance(c.stop_reason, str) else None
            finish = c.finish_reason or "stop"
            if finish == "stop" and stop_str is None:
                finish = "eos"
            if finish == "abort":
                finish = "aborted"
            key = self._forget(rid)
            res = (streamed.result(finish, stop_str) if streamed is not None
                   else GenResult(c.text, len(c.token_ids), finish, stop_str, position_entropies(c), list(c.token_ids)))
            if finish != "aborted":  # a round the solver may continue from: its ids must spell its text
                res.token_ids = self._spelling(res.token_ids, res.text, req.skip_special_tokens)
            done.append((key, res))
        if answered:
            self.engine.abort_request(answered)
        return done

    def _streamed_partial(self, streamed: Streamed, rid: str) -> GenResult:
        """A streamed request cut short (a deadline, a decided vote): what it sent, and the tokens it generated
        after its last delta (up to stream_interval - 1), read from vLLM's detokenizer where that read agrees
        with what was sent. Their entropies never came: the list is shorter than the tokens by as many."""
        got = vllm_internals.partial_output(self.engine, rid)
        sent = len(streamed.ids)
        if len(got.token_ids) > sent and got.token_ids[:sent] == streamed.ids and got.text.startswith(streamed.text):
            return GenResult(got.text, len(got.token_ids), "aborted", None, streamed.entropies, got.token_ids)
        return streamed.result("aborted")

    def _answered(self, streamed: Streamed, at: int, start: int, before: int, skip: bool) -> GenResult:
        """The request's result cut where its answer closed (`at` in its text): the text up to there, the
        tokens that wrote it (the last delta began at character `start`, after `before` ids) with their
        entropies, and ids that spell the text as `_spelling` checks. Once per answered request: at most
        stream_interval decodes of the last delta's few tokens."""
        keep = len(streamed.ids)
        for k in range(before + 1, len(streamed.ids)):
            if start + len(self.tokenizer.decode(streamed.ids[before:k], skip_special_tokens=skip)) >= at:
                keep = k
                break
        text = streamed.text[:at]
        return GenResult(text, keep, "answer", None, streamed.entropies[:keep],
                         self._spelling(streamed.ids[:keep], text, skip))

    def _forget(self, rid: str) -> Hashable:
        key = self._reqs.pop(rid).key
        self._rid.pop(key, None)
        return key

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
        if self._scratch_cache is not None:  # a seeded copy nobody keeps: 100 MiB at gpt-oss-120b's shape
            import shutil

            shutil.rmtree(self._scratch_cache, ignore_errors=True)
