"""Prompt templates: what the model is asked. How tool calls are written and read is the protocol's
(aimokit.protocols): the fenced one is the Numina convention, code in ```python fences and results in
```output fences; every protocol asks for the final answer in \\boxed{}.
"""

from __future__ import annotations

from .config import CompetitionConfig, SamplingConfig

TEMPLATES: dict[str, str] = {
    "tir": (
        "{problem}\n\n"
        "Solve the problem step by step. Write Python code in ```python blocks whenever it helps "
        "(sympy and numpy are available); each block's printed output will be shown to you in an "
        "```output block. The final answer is an integer between {answer_min} and {answer_max}{modulo_note}; "
        "put it in \\boxed{{}}."
    ),
    "cot": (
        "{problem}\n\n"
        "Reason step by step. The final answer is an integer between {answer_min} and "
        "{answer_max}{modulo_note}; put it in \\boxed{{}}."
    ),
}

CODE_OPEN = "```python"
OUTPUT_OPEN = "```output"


def user_message(problem: str, solver: SamplingConfig, comp: CompetitionConfig) -> str:
    try:
        template = TEMPLATES[solver.prompt]
    except KeyError:
        raise ValueError(
            f"unknown prompt template {solver.prompt!r}; choose one of {sorted(TEMPLATES)}"
        ) from None
    modulo_note = f" (if the result is larger, give it modulo {comp.modulo})" if comp.modulo else ""
    return template.format(
        problem=problem.strip(),
        answer_min=comp.answer_min,
        answer_max=comp.answer_max,
        modulo_note=modulo_note,
    )


def messages(problem: str, solver: SamplingConfig, comp: CompetitionConfig) -> list[dict[str, str]]:
    msgs = []
    if solver.system_prompt:
        msgs.append({"role": "system", "content": solver.system_prompt})
    msgs.append({"role": "user", "content": user_message(problem, solver, comp)})
    return msgs
