"""Prompt templates: what the model is asked, in the words of the protocol it speaks.

Each protocol names its own template (`ToolProtocol.default_prompt`); a recipe may pick another with
`solver.prompt`, but only one whose instructions fit its protocol (`ToolProtocol.fits_prompts`): asking a harmony model
to write ```python fences that nothing runs is the mismatch this guards against. Every template states the
answer's range and modulo: AIMO-3's 2nd place found stating them its biggest single gain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import CompetitionConfig, SamplingConfig

_ANSWER = ("The final answer is an integer between {answer_min} and {answer_max}{modulo_note}; "
           "put it in \\boxed{{}}.")
TEMPLATES: dict[str, str] = {
    "tir": (  # fenced: the Numina convention
        "{problem}\n\n"
        "Solve the problem step by step. Write Python code in ```python blocks whenever it helps "
        "(sympy and numpy are available); each block's printed output will be shown to you in an "
        "```output block. " + _ANSWER
    ),
    "tool": (  # harmony and hermes: the python tool the model calls, declared by the protocol
        "{problem}\n\n"
        "Solve the problem step by step. Call the python tool whenever it helps (sympy and numpy are "
        "available): it runs your code in a stateful session and returns what it prints. " + _ANSWER
    ),
    "cot": (
        "{problem}\n\n"
        "Reason step by step. " + _ANSWER
    ),
}

CODE_OPEN = "```python"
OUTPUT_OPEN = "```output"


def user_message(problem: str, solver: "SamplingConfig", comp: "CompetitionConfig", default: str) -> str:
    """The problem and the instructions: `solver.prompt`'s template, or the protocol's own (`default`)."""
    template = TEMPLATES[solver.prompt or default]
    modulo_note = f" (if the result is larger, give it modulo {comp.modulo})" if comp.modulo else ""
    return template.format(
        problem=problem.strip(),
        answer_min=comp.answer_min,
        answer_max=comp.answer_max,
        modulo_note=modulo_note,
    )


def messages(problem: str, solver: "SamplingConfig", comp: "CompetitionConfig", default: str) -> list[dict[str, str]]:
    msgs = []
    if solver.system_prompt:
        msgs.append({"role": "system", "content": solver.system_prompt})
    msgs.append({"role": "user", "content": user_message(problem, solver, comp, default)})
    return msgs
