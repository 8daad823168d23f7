"""Greedy generations with and without the LoRA adapter from one vLLM engine.

Run as a script (vLLM spawns processes); prints one JSON line.
"""

import json
import sys

from aimokit.config import EngineConfig
from aimokit.engine import GenRequest, create_engine, generate
from aimokit.protocols import get_protocol


def main() -> None:
    model, adapter = sys.argv[1], sys.argv[2]
    cfg = EngineConfig(backend="vllm", model=model, lora=adapter, max_model_len=512, dtype="float32",
                       max_num_seqs=8, backends={"vllm": {"gpu_memory_utilization": 0.2, "enforce_eager": True}})
    engine = create_engine(cfg)
    from aimokit.engine import vllm_internals
    from aimokit.engine.vllm_warmup import warm_up  # the shape sweep (engine.vllm.warm_up; off by default on CPU)

    # as the engine calls it: the setting's alignment, past the CUDA graphs vLLM reports (none on a CPU)
    swept = warm_up(engine.llm, engine.lora, 4, 64, 512, len(engine.tokenizer),
                    align=cfg.section("vllm").warm_up_align, above=vllm_internals.largest_graph_step(engine.engine))
    prompt = engine.chat_prompt([{"role": "user", "content": "What is 2 + 3? Answer briefly."}])
    req = [GenRequest(prompt, max_tokens=24, temperature=0.0, seed=0)]
    with_lora = generate(engine, req)[0].text
    again = generate(engine, req)[0].text
    lora, engine.lora = engine.lora, None
    without = generate(engine, req)[0].text
    engine.lora = lora
    # vLLM's own contract for what the solver asks besides: top-k logprobs (entropies), min_p, special tokens kept
    sampled = generate(engine, [GenRequest(prompt, max_tokens=12, temperature=1.0, min_p=0.02, top_logprobs=3,
                                           skip_special_tokens=False)])[0]
    # a request that ends as its answer closes (streamed DELTA outputs, aborted mid-way), next to one that runs on
    engine.lora = None  # the test adapter garbles text; the base model boxes on
    boxes = "Answers: $\\boxed{1}$, $\\boxed{2}$, $\\boxed{3}$, "
    full, answered = generate(engine, [
        GenRequest(boxes, max_tokens=40, temperature=0.0, seed=0),
        GenRequest(boxes, max_tokens=40, temperature=0.0, seed=0, top_logprobs=2,
                   done_when=get_protocol("cot").answer_check("", ""))])
    # a streamed request cut short (a deadline): the tokens it generated after its last delta come back too
    engine.submit("cut", GenRequest(boxes, max_tokens=40, temperature=0.0, seed=0, done_when=lambda text: False))
    for _ in range(10):
        engine.step(None)
    sent = len(engine._reqs[engine._rid["cut"]].streamed.ids)
    cut = engine.abort(["cut"])["cut"]
    print("LORA_PROBE " + json.dumps({"with": with_lora, "again": again, "without": without,
                                      "tokens": sampled.n_tokens, "entropies": sampled.entropies,
                                      "max_lora_rank": engine.engine.vllm_config.lora_config.max_lora_rank,
                                      "stream_interval": engine.engine.vllm_config.scheduler_config.stream_interval,
                                      "warm_up": swept, "full": [full.text, full.n_tokens, full.finish],
                                      "full_ids": [len(full.token_ids), engine.tokenizer.decode(full.token_ids)],
                                      "cut": [sent, cut.n_tokens, cut.text, engine.tokenizer.decode(cut.token_ids)],
                                      "answered": [answered.text, answered.n_tokens, answered.finish,
                                                   len(answered.entropies)]}), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
