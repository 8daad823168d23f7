"""Text generation behind one small facade, on vLLM or transformers.

The solver needs more than `LLM.generate`: it must stop at a deadline, cancel
a problem's remaining samples once its vote is decided, and put a sample back
into the running batch as soon as its code has run, without waiting for the
slowest sample of a round. Every backend therefore runs the one loop in
`loop` (fed by a `Driver`) and supplies only submit / abort / step:
`vllm` (with its two internals in `vllm_internals`) and `hf`. A new backend
is one new module here and one line in `BACKENDS`.
"""

from __future__ import annotations

import logging
import time

from ..config import EngineConfig
from .loop import ListDriver, QueuedEngine, SteppedEngine, generate
from .types import Driver, Engine, EngineError, GenRequest, GenResult

log = logging.getLogger(__name__)

__all__ = ["Driver", "Engine", "EngineError", "GenRequest", "GenResult", "ListDriver", "QueuedEngine",
           "SteppedEngine", "create_engine", "generate"]

BACKENDS = {"vllm": "aimokit.engine.vllm:VLLMEngine", "transformers": "aimokit.engine.hf:TransformersEngine"}


def backend_class(name: str) -> type:
    import importlib

    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_engine(cfg: EngineConfig) -> Engine:
    """Start the configured backend on the configured (or embedded default) model."""
    from ..models import resolve_model

    model_dir = resolve_model(cfg.model)
    if cfg.lora:
        from ..adapters import validate_adapter

        validate_adapter(cfg.lora, model_dir)
    backend, fell_back = cfg.backend, ""
    if backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            if not cfg.fallback:
                raise EngineError(f"engine.backend = 'vllm' but vLLM cannot be imported ({e}): install the wheels "
                                  "dataset (the notebook's first cell does, with --no-index), or set "
                                  "engine.fallback = 'transformers' to run that slowly instead") from e
            fell_back = f"vllm not importable ({e}); engine.fallback = {cfg.fallback!r}"
            log.warning("FALLBACK: %s: the %s backend runs instead, far slower", fell_back, cfg.fallback)
            backend = cfg.fallback
    t = time.monotonic()
    try:
        engine = backend_class(backend)(cfg, model_dir)
    except Exception as e:
        raise EngineError(f"could not start the {backend} engine on {model_dir}: {e}") from e
    log.info("engine %s ready in %.1fs", backend, time.monotonic() - t)
    engine.fell_back = fell_back  # the kernel's summary records it
    return engine
