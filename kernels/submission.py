"""AIMO submission kernel: the file Kaggle runs, and the file the dry-run runs.

On Kaggle the notebook generated from this file first installs the offline
wheelhouse, then runs this code with the aimokit source dataset on sys.path
and $AIMOKIT_CONFIG pointing at the kernel config in that dataset. Locally,
`python build.py dry-run` runs this same file with a local config.
"""

import os
import sys
import time

os.environ.setdefault("AIMOKIT_T0", str(time.time()))  # the budget's clock starts here

# The source dataset (Kaggle) or the checkout (local) provides the package.
for candidate in (
    os.environ.get("AIMOKIT_SRC", ""),
    "/kaggle/input/aimokit-source/src",
    # a script has __file__ (the dry-run); a notebook cell, as Kaggle runs it, does not
    os.path.join(os.path.dirname(os.path.abspath(globals().get("__file__", "."))), "..", "src"),
):
    if candidate and os.path.isdir(os.path.join(candidate, "aimokit")):
        sys.path.insert(0, os.path.abspath(candidate))
        break

from aimokit.serving import main  # noqa: E402

if __name__ == "__main__":  # vLLM spawns worker processes: keep the guard
    status = main()
    if status:  # never SystemExit(0): Jupyter reports any SystemExit as a failed cell, and so a failed run
        raise SystemExit(status)
