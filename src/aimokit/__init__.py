"""aimokit: from a math LLM to a running AIMO submission.

The public entry points: `load_config` (one typed config per job),
`Kernel` (what a submission runs), `Solver` (tool-integrated reasoning and
voting), `load_problems`.
"""

from .config import SolveConfig, load_config
from .problems import Problem, load_problems

__all__ = ["SolveConfig", "load_config", "Problem", "load_problems", "Kernel", "Solver"]
__version__ = "0.1.0"


def __getattr__(name: str):  # keep `import aimokit` light: no torch until needed
    if name == "Kernel":
        from .kernel import Kernel

        return Kernel
    if name == "Solver":
        from .solver import Solver

        return Solver
    raise AttributeError(name)
