"""The [competition] table: the rules of one competition, and the registered interface that reaches it.

Why its own module: the competition entry (interfaces/) carries the serve function, the submission file and
the answer type; this is what a config says of it (range, modulo, time limit, where its data is mounted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config_base import ConfigError, setting


@dataclass(frozen=True)
class CompetitionConfig:
    """The rules of one competition: answer range, modulo, limit, interface."""

    name: str = setting("aimo2", help="A label for logs and reports: aimo1, aimo2 or aimo3.")
    answer_min: int = setting(0, help="The smallest answer the competition accepts.")
    answer_max: int = setting(999, help="The largest answer the competition accepts (AIMO-3: 99999).")
    modulo: int = setting(1000, help="AIMO-1/2 take answers mod 1000; 0 means no modulo (AIMO-3).")
    time_limit_s: float = setting(5 * 3600, help="The competition's run-time limit in seconds; the budget keeps the whole run under it.")
    expected_problems: int = setting(50, help="Problems the hidden set holds; the budget divides time by it when the server hands problems out one at a time and the total is not visible.")
    interface: str = setting("kaggle_evaluation", help="How the competition reaches the kernel: a registered "
                                                       "interface (aimokit.interfaces): 'kaggle_evaluation' "
                                                       "(AIMO-2/3) or 'aimo' (AIMO-1).")
    server_module: str = setting("kaggle_evaluation.aimo_2_inference_server", help="The competition's inference-server module (shipped with its data).")
    server_class: str = setting("AIMO2InferenceServer", help="The server class in server_module; it is given the predict function.")
    data_dir: str = setting("kaggle:competitions/ai-mathematical-olympiad-progress-prize-2", help="Where the competition's own files (test.csv, kaggle_evaluation/) live on Kaggle: a path, or the competition named by its source (kaggle:competitions/<slug>), found under whichever layout Kaggle mounts it (aimokit.mounts).")
    fallback_answer: int = setting(0, help="The answer given when nothing better is known (never left blank).")

    def __post_init__(self) -> None:
        if self.answer_min > self.answer_max:
            raise ConfigError(
                f"competition.answer_min ({self.answer_min}) > answer_max ({self.answer_max})"
            )
        if self.modulo < 0:
            raise ConfigError("competition.modulo must be positive, or 0 for no modulo")
        from .registry import RegistryError

        try:
            entry = self.entry
        except RegistryError as e:
            raise ConfigError(str(e)) from None
        if entry.answer_type is not int:  # the solver's extraction, votes and range check read integers
            raise ConfigError(f"competition.interface = {self.interface!r} takes {entry.answer_type.__name__} "
                              "answers, but the solver extracts integer answers only: give the interface "
                              "answer_type = int, or extend aimokit.answers first")
        if not entry.is_answer(self.fallback_answer):
            raise ConfigError(f"competition.fallback_answer ({self.fallback_answer!r}) must be an "
                              f"{entry.answer_type.__name__}, the type {self.interface!r} takes")
        if not self.answer_min <= self.fallback_answer <= self.answer_max:
            raise ConfigError("competition.fallback_answer must lie in the answer range")

    @property
    def entry(self) -> Any:
        """The registered interface: its serve, submission file and answer type (aimokit.interfaces)."""
        from . import registry

        return registry.INTERFACES.get(self.interface, "competition.interface")
