"""Execute a notebook in a Jupyter kernel, as Kaggle does, in a working directory; exit 1 on a failed cell.

Usage: run_notebook.py NOTEBOOK WORKDIR. The kernel inherits this process's environment.
"""

import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> int:
    path, workdir = sys.argv[1], sys.argv[2]
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=480, kernel_name="python3", resources={"metadata": {"path": workdir}})
    try:
        client.execute()
    except CellExecutionError as e:
        print(str(e)[-4000:], file=sys.stderr)
        return 1
    for cell in nb.cells:  # what the cells printed, for the test's message
        for out in cell.get("outputs", []):
            print(out.get("text", ""), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
