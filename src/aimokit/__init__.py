"""aimokit: from a math LLM to a running AIMO submission.

The public entry points: `KernelConfig.load` (every job config loads the same way),
`Kernel` (what a submission runs), `Solver` (tool-integrated reasoning and
voting), `load_problems`.
"""

from .config import KernelConfig
from .problems import Problem, load_problems

__all__ = ["KernelConfig", "Problem", "load_problems", "Kernel", "Solver"]
__version__ = "0.1.0"


def __getattr__(name: str):  # keep `import aimokit` light: no torch until needed
    if name == "Kernel":
        from .kernel import Kernel

        return Kernel
    if name == "Solver":
        from .solver import Solver

        return Solver
    raise AttributeError(name)
