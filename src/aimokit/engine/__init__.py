"""Text generation behind one small facade, on vLLM or transformers.

The solver needs more than `LLM.generate`: it must stop at a deadline, cancel
a problem's remaining samples once its vote is decided, and put a sample back
into the running batch as soon as its code has run, without waiting for the
slowest sample of a round. Every backend therefore runs the one loop in
`loop` (fed by a `Driver`) and supplies only submit / abort / step:
`vllm` (with its two internals in `vllm_internals`) and `hf`. A new backend
is one new module here whose engine class registers itself (`@BACKENDS.register()`,
aimokit.registry) and names the library it needs (`library`).
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

def backend_class(name: str) -> type:
    from ..registry import BACKENDS

    return BACKENDS.get(name, "engine.backend")


def _importable(cls: type) -> str:
    """'' when the backend's library imports, else why not."""
    import importlib

    try:
        importlib.import_module(getattr(cls, "library", "") or "builtins")
        return ""
    except ImportError as e:
        return str(e)


def create_engine(cfg: EngineConfig) -> Engine:
    """Start the configured backend on the configured (or embedded default) model."""
    from ..models import resolve_model

    model_dir = resolve_model(cfg.model)
    if cfg.lora:
        from ..adapters import validate_adapter

        validate_adapter(cfg.lora, model_dir)
    backend, fell_back = cfg.backend, ""
    why = _importable(backend_class(backend))
    if why:
        if not cfg.fallback:
            raise EngineError(f"engine.backend = {backend!r} but {backend_class(backend).library} cannot be imported "
                              f"({why}): install the wheels dataset (the notebook's first cell does, with "
                              "--no-index), or set engine.fallback to a backend that runs here (slowly)")
        fell_back = f"{backend} not importable ({why}); engine.fallback = {cfg.fallback!r}"
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
