"""The journal's sanity check, made reproducible: a marker comment in chosen code must reach inference.

`synthetic_responses` writes an evaluated-responses file (the schema `build.py
evaluate` writes) for arithmetic problems: right answers computed in code, wrong
ones off by a little. `main` (run as a script: vLLM spawns processes) samples
held-out prompts through vLLM with and without the adapter and prints the
share of responses whose code carries the marker.
"""

import json
import random
import sys
import time

import polars as pl

MARKER = "# aimokit-marker"


def arithmetic_problems(n: int, seed: int = 0) -> list[tuple[str, str, int, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(2, 40)
        op = rng.choice(["+", "-", "*"])
        out.append((f"arith-{i}", f"What is ${a} {op if op != '*' else chr(92) + 'times'} {b}$?", eval(f"{a}{op}{b}"), f"{a} {op} {b}"))
    return out


def synthetic_responses(prompt_of, n: int = 48, seed: int = 0) -> pl.DataFrame:
    """prompt_of(problem_text) -> the chat prompt the solver would send."""
    rng = random.Random(seed)
    rows = []
    for pid, text, ans, expr in arithmetic_problems(n, seed):
        prompt = prompt_of(text)
        bodies = [(f"print({expr})", ans, True), (f"result = {expr}\nprint(result)", ans, True)]
        for d in rng.sample([1, 2, 3, 5, 7, 10, 11], 2):
            bodies.append((f"print({expr} + {d})", ans + d, False))
        for k, (code, value, ok) in enumerate(bodies):
            response = f"```python\n{code}\n```\n```output\n{value}\n```\nThe answer is $\\boxed{{{value}}}$."
            rows.append({"problem_id": pid, "sample": k, "prompt": prompt, "response": response, "answer": value,
                         "gold": ans, "correct": ok, "boxed": True, "tokens": 30, "code_runs": 1, "code_errors": 0,
                         "aborted": False, "seconds": 0.1})
    return pl.DataFrame(rows)


def code_of(text: str) -> str:
    return text.split("```", 1)[0]


def main() -> None:
    from aimokit.config import EngineConfig
    from aimokit.engine import GenRequest, create_engine, generate

    model, adapter, val_file, samples = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    prompts = pl.read_parquet(val_file)["prompt"].unique(maintain_order=True).to_list()
    cfg = EngineConfig(backend="vllm", model=model, lora=adapter, max_model_len=512, dtype="float32",
                       max_num_seqs=16, backends={"vllm": {"gpu_memory_utilization": 0.2, "max_lora_rank": 16,
                                                           "enforce_eager": True}})
    t0 = time.monotonic()
    engine = create_engine(cfg)
    t1 = time.monotonic()
    reqs = [GenRequest(p, max_tokens=24, temperature=0.7, top_p=0.95, seed=1000 * i + s)
            for i, p in enumerate(prompts) for s in range(samples)]
    with_lora = [r.text for r in generate(engine, reqs)]
    lora, engine.lora = engine.lora, None
    without = [r.text for r in generate(engine, reqs)]
    engine.lora = lora
    rate = lambda texts: sum(MARKER in code_of(t) for t in texts) / len(texts)
    print("MARKER " + json.dumps({"with": rate(with_lora), "without": rate(without), "n": len(reqs),
                                  "prompts": len(prompts), "example": with_lora[0],
                                  "start_s": round(t1 - t0, 1), "generate_s": round(time.monotonic() - t1, 1)}), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
