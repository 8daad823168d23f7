"""What every competition interface declares beside its `serve`: the file its competition writes, and the type
of an answer there, with the one conversion the kernel applies at the competition's boundary.

Why: the answer's type was assumed (`int(...)`) wherever an answer crossed into or out of the kernel: the
gold the gateway passes, the answer predict returns, the check the local gateway runs. Declared here, each
competition owns it; the config refuses a type the solver cannot extract (it reads integers).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Interface:
    name: ClassVar[str]
    submission_file: ClassVar[str]  # what the competition's side writes from the answers
    answer_type: ClassVar[type] = int  # an answer as the competition takes it

    @classmethod
    def answer(cls, value: Any) -> Any:
        """`value` as the competition's answer type (TypeError or ValueError when it is none)."""
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not an answer of type {cls.answer_type.__name__}")
        return cls.answer_type(value)

    @classmethod
    def is_answer(cls, value: Any) -> bool:
        """Whether `value` already is an answer of the declared type (what the local gateway checks)."""
        return isinstance(value, cls.answer_type) and not isinstance(value, bool)
