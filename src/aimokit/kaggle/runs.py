"""A pushed kernel's run: its status, its output (each file checked: an expired link saves an error page),
waiting for it, and submitting a version of it to its competition."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from .client import PushError, _describe, call
from .config import PushOptions
from .datasets_push import load_state

T = TypeVar("T")


def _access(fn: Callable[[], T], ref: str) -> T:
    """The client turns a 401/403 on a kernel into a ValueError with a long story; say it in one line."""
    try:
        return fn()
    except ValueError as e:
        if "Cannot access kernel" in str(e):
            raise PushError(f"Kaggle denies access to kernel {ref}: check the slug and that these credentials "
                            "own it (kaggle.com/code/<owner>/<slug>)") from None
        raise


def kernel_status(api: Any, ref: str, opts: PushOptions) -> dict[str, str]:
    resp = _access(lambda: call(lambda: api.kernels_status(ref), f"status of kernel {ref}", opts), ref)
    status = getattr(resp, "status", "")
    return {"kernel": ref, "status": getattr(status, "name", str(status)).lower(),
            "failure_message": getattr(resp, "failure_message", None) or ""}


# What a file the kernel wrote must start with; the client saves whatever the signed URL returns, an
# expired link's error page included.
_MAGIC = {".parquet": b"PAR1", ".zip": b"PK", ".gz": b"\x1f\x8b", ".png": b"\x89PNG", ".pdf": b"%PDF"}
_TEXT = {".json", ".jsonl", ".csv", ".txt", ".md", ".toml", ".ipynb", ".html"}
_ERROR_PAGE = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*<Error>|<!DOCTYPE html|<html)", re.IGNORECASE)


def check_output_file(path: Path, may_be_empty: bool = False) -> None:
    """A fetched output file that is empty, an error page, or not what its name says is an error, never a
    result: every file, not only the binary formats (JSON must parse, text must be text). `may_be_empty`: a
    file of a saved compile cache, where Inductor's empty lock files belong."""
    data = path.read_bytes() if path.is_file() else b""
    why = ""
    magic = _MAGIC.get(path.suffix)
    if not data and may_be_empty and path.is_file():
        return
    if not data:
        why = "is empty or missing"
    elif magic and not data.startswith(magic):
        why = f"is not a {path.suffix[1:]} file (it starts {data[:24]!r})"
    elif path.suffix != ".html" and _ERROR_PAGE.match(data[:256]):
        why = f"is an error page, not the kernel's file (it starts {data[:40]!r})"
    elif path.suffix in _TEXT:
        try:
            text = data.decode("utf-8")
            if path.suffix in (".json", ".ipynb"):
                json.loads(text)
            elif path.suffix == ".jsonl":
                for line in text.splitlines():
                    if line.strip():
                        json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            why = f"is not valid {path.suffix[1:]} ({str(e)[:80]})"
    if why:
        path.unlink(missing_ok=True)  # never left where a result is expected
        raise PushError(f"fetched {path.name} {why}: an expired download link's answer? run `build.py output` again")


def kernel_output(api: Any, ref: str, path: Path, opts: PushOptions) -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    files, _ = _access(lambda: call(lambda: api.kernels_output(ref, str(path), force=True, quiet=True),
                                    f"output of {ref}", opts), ref)
    from ..engine.compile_cache import MANIFEST

    caches = [m.parent for m in path.rglob(MANIFEST)]  # saved compile caches among the output
    for f in files:
        if not f.endswith(".log"):  # the log is the run's text, written by the client itself
            p = Path(f)
            check_output_file(p, may_be_empty=any(p.is_relative_to(c) for c in caches))
    return files


# -- submit and score ----------------------------------------------------------

def pushed_version(out: Path, ref: str) -> int | None:
    """The version number the last push of kernel `ref` got, from the push state."""
    v = load_state(out).get(f"version:{ref}")
    return int(v) if v else None


def wait_complete(api: Any, ref: str, opts: PushOptions, timeout_s: float,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    """Poll the kernel's run until it completes; a failed run, or one past `timeout_s`, is an error."""
    t0 = time.monotonic()
    while True:
        st = kernel_status(api, ref, opts)
        if st["status"] == "complete":
            return st
        if st["status"] in ("error", "cancel_acknowledged", "cancelled"):
            raise PushError(f"kernel {ref} ended with status {st['status']}: {st['failure_message'] or 'no message'};"
                            f" fix it and push again (`build.py output` fetches its log)")
        if time.monotonic() - t0 > timeout_s:
            raise PushError(f"kernel {ref} is still {st['status']} after {timeout_s:.0f}s; "
                            "submit it later with `build.py submit`")
        sleep(opts.poll_s)


def submit(api: Any, competition: str, ref: str, version: int, message: str, opts: PushOptions,
           file_name: str = "submission.parquet") -> str:
    """Submit version `version` of kernel `ref` to a code competition (the client's competition_submit_code);
    `file_name` is the file the competition's interface writes (interfaces.*.submission_file)."""
    try:
        resp = call(lambda: api.competition_submit_code(file_name=file_name, message=message,
                                                        competition=competition, kernel=ref, kernel_version=version,
                                                        quiet=True),
                    f"submission of {ref} version {version} to {competition}", opts, attempts=1)
    except Exception as e:
        raise PushError(f"Kaggle refused the submission of {ref} version {version} to {competition}: "
                        f"{_describe(e)}. `build.py submissions` shows what was submitted") from e
    return str(getattr(resp, "message", "") or "submitted")


def submissions(api: Any, competition: str, opts: PushOptions, limit: int = 20) -> list[dict[str, Any]]:
    """The latest submissions to a competition: status, scores and description."""
    try:
        subs = call(lambda: api.competition_submissions(competition, page_size=limit),
                    f"submissions to {competition}", opts) or []
    except Exception as e:
        raise PushError(f"could not list the submissions to {competition}: {_describe(e)}") from e
    rows = []
    for sub in subs:
        status = getattr(sub, "status", "")
        rows.append({"ref": getattr(sub, "ref", ""), "date": str(getattr(sub, "date", "") or ""),
                     "description": getattr(sub, "description", "") or "",
                     "status": getattr(status, "name", str(status)).lower(),
                     "public_score": getattr(sub, "public_score", None),
                     "private_score": getattr(sub, "private_score", None),
                     "error": getattr(sub, "error_description", None) or ""})
    return rows
