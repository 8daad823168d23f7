"""One base for every error the kit raises on purpose.

Each says what is wrong and how to fix it, so the command line prints it in
one line (`build.py` catches `AimokitError` in one place) instead of a
traceback. Each subclass also keeps its builtin base (ValueError,
RuntimeError, ...) for callers that catch those.
"""


class AimokitError(Exception):
    """A problem with the user's input, files, environment or Kaggle; the message names the fix."""
