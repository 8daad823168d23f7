"""Plain transformers `model.generate`: the fallback where vLLM is missing, and the baseline.

It generates a batch of compatible requests at once (the shared loop's
`QueuedEngine`), and its step stops at the deadline by itself, so the loop
keeps no room for one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..config import ConfigError, EngineConfig, setting
from ..registry import BACKENDS
from .chat import apply_chat_template
from .loop import QueuedEngine
from .types import GenRequest, GenResult


@dataclass(frozen=True)
class TransformersSettings:
    """[engine.transformers]: what only the transformers backend reads."""

    batch_size: int = setting(8, help="Requests generated together in one model.generate call.")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("engine.transformers.batch_size must be >= 1")


@BACKENDS.register()
class TransformersEngine(QueuedEngine):
    name = "transformers"
    library = "transformers"
    requirements = ()  # the Kaggle image has transformers and torch
    step_honours_deadline = True
    Settings = TransformersSettings

    def __init__(self, cfg: EngineConfig, model_dir: str, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
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
        self.batch_size = cfg.section(self.name).batch_size
        self.seed = cfg.seed

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages, tools=None):
        return apply_chat_template(self.tokenizer, messages, tools)

    def generate_batch(self, requests: list[GenRequest], deadline: float | None) -> list[GenResult]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self.torch
        clock = self.clock

        class _Deadline(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return deadline is not None and clock() >= deadline

        head = requests[0]
        enc = self.tokenizer(
            [r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        answered: set[int] = set()
        tokenizer, start = self.tokenizer, enc["input_ids"].shape[1]

        class _Answered(StoppingCriteria):
            """Rows whose answer closed (`done_when`), checked when the newest token holds a "}"."""

            def __call__(self, input_ids, scores, **kw):
                stop = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                for row in range(input_ids.shape[0]):
                    if row not in answered and "}" in tokenizer.decode(input_ids[row, -1:]):
                        text = tokenizer.decode(input_ids[row, start:], skip_special_tokens=head.skip_special_tokens)
                        if head.done_when(text):
                            answered.add(row)
                    stop[row] = row in answered
                return stop

        criteria = [_Deadline()] + ([_Answered()] if head.done_when else [])
        if head.seed is not None:
            torch.manual_seed(head.seed)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=head.temperature > 0,
                temperature=head.temperature if head.temperature > 0 else None,
                top_p=head.top_p if head.temperature > 0 else None,
                min_p=head.min_p if head.temperature > 0 and head.min_p > 0 else None,
                max_new_tokens=max(r.max_tokens for r in requests),
                stop_strings=list(head.stop) or None,
                tokenizer=self.tokenizer,
                stopping_criteria=StoppingCriteriaList(criteria),
                pad_token_id=self.tokenizer.pad_token_id,
                output_logits=bool(head.top_logprobs),
                return_dict_in_generate=True,
            )
        timed_out = deadline is not None and clock() >= deadline
        new = out.sequences[:, enc["input_ids"].shape[1] :]
        if head.top_logprobs:  # each step's top-k logprobs -> entropy, as vLLM reports them
            steps = torch.stack(out.logits, dim=1).float().log_softmax(-1).topk(head.top_logprobs, dim=-1).values
            step_entropy = (-(steps.exp() * steps).sum(-1)).tolist()  # (batch, steps)
        results = []
        for row, req in enumerate(requests):
            ids = new[row].tolist()[: req.max_tokens]
            eos_hit = False
            if self.tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(self.tokenizer.eos_token_id)]
                eos_hit = True
            ids = [t for t in ids if t != self.tokenizer.pad_token_id]
            text = self.tokenizer.decode(ids, skip_special_tokens=req.skip_special_tokens)
            res = cut_at_stop(text, head.stop, len(ids), req.max_tokens, eos_hit)
            if head.top_logprobs:
                res.entropies = step_entropy[row][: len(ids)]
            if timed_out and res.finish == "length":
                res.finish = "aborted"
            if row in answered and res.finish != "stop":
                res.finish = "answer"
            results.append(res)
        return results

    def close(self) -> None:
        self.model = None


def cut_at_stop(text: str, stops: tuple[str, ...], n_tokens: int, max_tokens: int, eos: bool) -> GenResult:
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
