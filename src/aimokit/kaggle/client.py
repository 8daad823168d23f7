"""The kaggle client, as every push step talks to it: credentials, one call with retries and a timeout, and the
errors and the report the steps share.

Every request goes through `kaggle.api.KaggleApi`; what this adds is what the client does not do: a time limit
on a call (it sets no HTTP timeout), retries of what is worth retrying, and a check, before a retry, of whether
the first attempt landed after all.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ..errors import AimokitError
from ..io import Abandoned, run_with_timeout
from .config import PushOptions

log = logging.getLogger(__name__)
T = TypeVar("T")


class PushError(AimokitError, RuntimeError):
    """A push that cannot start or could not finish; the message says what was sent."""


class UploadFailed(PushError):
    """The client gave up on one file's upload; worth another try of the whole dataset."""


@dataclass
class PushReport:
    pushed: list[str] = field(default_factory=list)  # dataset refs sent in this run
    skipped: list[str] = field(default_factory=list)  # unchanged since the last push (datasets, kernel:<ref>)
    kernels: list[str] = field(default_factory=list)  # kernel urls
    uploaded_files: dict[str, list[str]] = field(default_factory=dict)  # ref -> files whose upload finished
    warnings: list[str] = field(default_factory=list)  # settings Kaggle applied other than asked

    def summary(self) -> str:
        parts = [f"datasets pushed: {', '.join(self.pushed) or 'none'}",
                 f"unchanged, not pushed: {', '.join(self.skipped) or 'none'}",
                 f"kernels pushed: {', '.join(self.kernels) or 'none'}"]
        for ref, files in self.uploaded_files.items():
            if ref not in self.pushed:
                parts.append(f"files uploaded for {ref} before it failed: {', '.join(files) or 'none'}")
        return "; ".join(parts + [f"WARNING {w}" for w in self.warnings])


# -- the client ---------------------------------------------------------------

def authenticated_api() -> Any:
    """The kaggle client, authenticated, or a PushError naming where credentials go.

    Checked before anything is built or uploaded; the client's own search order
    applies (KAGGLE_API_TOKEN, ~/.kaggle/access_token, KAGGLE_USERNAME/KAGGLE_KEY,
    $KAGGLE_CONFIG_DIR or ~/.kaggle/kaggle.json).
    """
    quiet = io.StringIO()
    try:
        # `import kaggle` itself authenticates and prints the client's own help when it finds nothing: one
        # story about credentials is told, the one below, so the import is silenced with the check
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise PushError(
            "no Kaggle credentials found, so nothing was uploaded. The kaggle client 2.x accepts, in its order: "
            "an access token (run `kaggle auth login`, or create one at kaggle.com > Settings > API and save it "
            "to ~/.kaggle/access_token or set KAGGLE_API_TOKEN), or a legacy API key (kaggle.json in ~/.kaggle/ or "
            "$KAGGLE_CONFIG_DIR with mode 600, or KAGGLE_USERNAME and KAGGLE_KEY)"
        ) from None
    return api


def check_user(api: Any, user: str) -> None:
    """A ship config for one account pushed with another's key fails at Kaggle with a 403; say so first."""
    who = (api.config_values or {}).get("username")
    if who and who != user:
        raise PushError(f"the ship config's user is {user!r} but the Kaggle credentials are {who!r}; "
                        f"set user = {who!r} in the ship config (or use that account's credentials)")


def _status_code(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None)


def retriable(exc: BaseException) -> bool:
    """5xx, 408, 429, timeouts and dropped connections are worth another try; other 4xx are not."""
    code = _status_code(exc)
    if code is not None:
        return code >= 500 or code in (408, 429)
    return isinstance(exc, (TimeoutError, ConnectionError, UploadFailed)) or type(exc).__name__ in (
        "ConnectionError", "ConnectTimeout", "ReadTimeout", "ChunkedEncodingError", "ProtocolError")


def call(fn: Callable[[], T], what: str, opts: PushOptions, timeout_s: float | None = None,
         sleep: Callable[[float], None] = time.sleep, attempts: int | None = None,
         landed: Callable[[bool], T | None] | None = None) -> T:
    """fn with bounded retries and exponential backoff; the last error propagates.

    `attempts=1` for calls that must not be repeated blindly (a submission: a repeat costs a daily slot).
    `landed(unknown)`, asked before each retry, returns the result of an earlier attempt that reached Kaggle
    after all (a timed-out request is abandoned, not cancelled, and may still finish): then nothing is resent.
    `unknown` is True when no answer came, so the attempt may have landed and not be visible yet.
    """
    delay = opts.backoff_s
    attempts = attempts or opts.attempts
    for attempt in range(1, attempts + 1):
        try:
            return run_with_timeout(fn, timeout_s or opts.call_timeout_s, what)
        except Exception as e:
            if attempt == attempts or not retriable(e):
                raise
            log.warning("%s failed (%s); retry %d/%d in %.1f s", what, _describe(e), attempt,
                        attempts - 1, delay)
            sleep(delay * (1 + 0.25 * random.random()))
            delay *= 2
            if landed is not None and isinstance(e, Abandoned):
                # the timed-out request is still in flight and may yet land: let it finish (or give up on it)
                # before asking whether it did, so a slow first request is never followed by a second one
                e.thread.join(opts.landed_grace_s)
                if e.thread.is_alive():
                    log.warning("%s: the abandoned request is still running after %.0f s; sending again",
                                what, opts.landed_grace_s)
            # an answer that never came (a timeout, a dropped connection) leaves the outcome unknown
            unknown = isinstance(e, Abandoned) or _status_code(e) is None
            if landed is not None and (done := landed(unknown)) is not None:
                log.warning("%s: the earlier attempt reached Kaggle after all; not sending it again", what)
                return done
    raise AssertionError("unreachable")


def _describe(e: BaseException) -> str:
    code = _status_code(e)
    return f"HTTP {code}: {e}" if code else f"{type(e).__name__}: {e}"
