"""Writing that survives a crash, and calls that cannot hang: the two things every job needs.

- `atomic_write`: a file on disk is always whole (temp file, fsync, rename);
  results, submissions, reports and state files all go through it.
- `append_line`: one fsynced line a record, so a killed run keeps every record
  it finished.
- `fresh_dir`: an output folder emptied first, so nothing stale ships.
- `run_with_timeout`: a blocking call (an HTTP client without timeouts) given a
  limit; the call runs on a daemon thread that is left behind on timeout.
- `readable`: wait on a child's pipe with a limit, whatever the descriptor's number.
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import AimokitError

T = TypeVar("T")


def atomic_write(path: Path, data: "str | bytes | Any") -> None:
    """Text, bytes, or a polars frame as parquet, written so the file on disk is always whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                f.write(data.encode("utf-8"))
            elif isinstance(data, bytes):
                f.write(data)
            else:  # a polars DataFrame
                data.write_parquet(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fresh_dir(d: Path) -> Path:
    """An empty folder: nothing from an earlier build may leak into this one."""
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it: a record written is a record kept."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


class Abandoned(AimokitError, TimeoutError):
    """fn did not return in time; it still runs in `thread` (a request in flight may still take effect)."""

    def __init__(self, message: str, thread: threading.Thread):
        super().__init__(message)
        self.thread = thread


def run_with_timeout(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """fn(), or Abandoned (a TimeoutError) after timeout_s; fn's own exception is raised here."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name=f"timeout:{what}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise Abandoned(f"{what}: no answer in {timeout_s:.0f} s", t)
    if "error" in box:
        raise box["error"]
    return box["value"]


def readable(fd: int, timeout: float) -> bool:
    """Whether `fd` has data (or EOF) within `timeout` seconds. poll, not select: select() refuses descriptors
    past 1023, which a pool of hundreds of sessions (two pipes each) reaches (measured: 256 samples in flight)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(0.0, timeout) * 1000))
