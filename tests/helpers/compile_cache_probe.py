"""One start of the kit's vLLM engine that compiles (no LoRA, not eager), with a compile cache seed and a save.

Run as a script (vLLM spawns processes; each start gets a fresh process, so vLLM's environment is its own);
prints the engine's compile-cache report as one JSON line and a short generation, proving the engine ran.
"""

import json
import sys

from aimokit.config import EngineConfig
from aimokit.engine import GenRequest, create_engine, generate


def main() -> None:
    model, seed, save = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = EngineConfig(backend="vllm", model=model, max_model_len=256, dtype="float32", max_num_seqs=4,
                       backends={"vllm": {"gpu_memory_utilization": 0.1, "enforce_eager": False,
                                          "compile_cache": seed, "compile_cache_save": save}})
    engine = create_engine(cfg)
    out = generate(engine, [GenRequest("1 2 3", max_tokens=4, temperature=0.0, seed=0)])[0]
    print("COMPILE_CACHE " + json.dumps({"report": engine.compile_cache, "tokens": out.n_tokens}), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
