"""Run model-written Python under limits: it is untrusted code.

Each block runs in a fresh interpreter (`python -I`) in its own process group
and scratch directory. Defences, in layers:

- wall time: the parent kills the whole process group at the deadline;
  RLIMIT_CPU is a backstop;
- memory: RLIMIT_AS (a memory bomb gets MemoryError, the host is untouched);
- output: the parent reads the pipe and kills the group once the cap is hit,
  so a print loop cannot fill memory or disk; what returns is head + tail;
- network: a fresh network namespace where the kernel allows one (then there
  is no interface but a down loopback), plus an audit hook that refuses
  connect/bind/sendto/getaddrinfo either way;
- files: the working directory, HOME and TMPDIR are the scratch directory;
  the audit hook refuses writes, deletes and renames outside it, and refuses
  starting processes or loading native libraries by hand (ctypes) that could
  step around the hook. RLIMIT_FSIZE caps any single file.
- reads: only from a list (the scratch directory, the interpreter and its
  libraries, and what `sandbox.read_paths` names); credentials (kaggle.json,
  .env, ssh keys, token files, cloud configs) are refused even there. Listing a
  directory counts as reading it. What the code prints goes to the model, to
  responses.parquet and from there into training data, so a secret must never
  be readable in the first place.

The hook is a Python-level guard: it stops the mistakes and the obvious
escapes a math model makes, not a determined attacker with a native exploit.
On Kaggle the kernel itself has no network, which is the outer wall.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .config import SandboxConfig
from .io import readable
from .sandbox_child import GUARD, ONE_SHOT


@dataclass
class ExecResult:
    output: str
    ok: bool
    returncode: int | None
    timed_out: bool = False
    truncated: bool = False
    seconds: float = 0.0

    def for_model(self) -> str:
        """The text fed back to the model after the code block."""
        lead = self.output + "\n" if self.output else ""
        if self.timed_out:
            return lead + "TimeoutError: execution timed out"
        if self.returncode is not None and self.returncode < 0 and not self.truncated:
            return lead + f"KilledError: the code's process was killed (signal {-self.returncode})"
        return self.output


def _layers_source() -> str:
    """kernel_layers.py's code, for the child's bootstrap (its docstring and imports as they are)."""
    from . import kernel_layers

    return Path(kernel_layers.__file__).read_text()


def probe_layers(cfg: SandboxConfig) -> dict[str, str]:
    """Which layers hold in a sandboxed process on this machine (seccomp, landlock, netns), asked of one: the
    kernel, evaluate and the preflight report it at start."""
    import json

    scratch = Path(tempfile.mkdtemp(prefix="aimokit-probe-"))
    try:
        proc = spawn(cfg, scratch, "\nprint('LAYERS ' + __import__('json').dumps(_layers))\n", 10)
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return {"seccomp": "unknown: the probe timed out", "landlock": "unknown", "netns": "unknown"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("LAYERS "):
            return json.loads(line[len("LAYERS "):])
    return {"seccomp": f"unknown: the probe said {out[-200:]!r}", "landlock": "unknown", "netns": "unknown"}


def spawn(cfg: SandboxConfig, scratch: Path, tail: str, cpu_s: int, stdin: int = subprocess.DEVNULL) -> subprocess.Popen:
    """A guarded interpreter in `scratch` running `tail` after the limits and the audit hook are in place."""
    boot = GUARD.format(cfg={
        "memory": int(cfg.memory_mb) << 20,
        "cpu": cpu_s,
        "fsize": int(cfg.max_file_bytes),
        "read_paths": [str(Path(p).resolve()) for p in cfg.read_paths],
        "kernel_layers": cfg.kernel_layers,
        "missing_layer": cfg.missing_layer,
        # tests simulate a kernel without a layer (AIMOKIT_SANDBOX_UNAVAILABLE=landlock,seccomp)
        "unavailable": [x for x in os.environ.get("AIMOKIT_SANDBOX_UNAVAILABLE", "").split(",") if x],
    }).replace("#@LAYERS@\n", _layers_source()) + tail
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
    }
    # -I ignores PYTHON* variables and the user site, but keeps the
    # interpreter's own site-packages (sympy, numpy) importable.
    return subprocess.Popen([cfg.python or sys.executable, "-I", "-c", boot], cwd=scratch, env=env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def run_code(code: str, config: SandboxConfig | None = None, prelude: str = "") -> ExecResult:
    """Run one block of untrusted Python; never raises for anything the code does."""
    cfg = config or SandboxConfig()
    scratch = Path(tempfile.mkdtemp(prefix="aimokit-sbx-"))
    start = time.monotonic()
    try:
        (scratch / "main.py").write_text(code, encoding="utf-8")
        if prelude:
            (scratch / "prelude.py").write_text(prelude, encoding="utf-8")
        proc = spawn(cfg, scratch, ONE_SHOT, cpu_s=int(cfg.timeout_s) + 2)
        out, timed_out, truncated = _collect(proc, cfg)
        rc = proc.poll()
        _kill_group(proc)
        text = out.decode("utf-8", errors="replace")
        text, cut = _shorten(text, cfg.max_output_chars)
        truncated = truncated or cut
        return ExecResult(
            output=text.rstrip("\n"),
            ok=(rc == 0 and not timed_out and not truncated),
            returncode=rc,
            timed_out=timed_out,
            truncated=truncated,
            seconds=time.monotonic() - start,
        )
    except OSError as e:  # could not even start the interpreter
        return ExecResult(output=f"sandbox error: {e}", ok=False, returncode=None,
                          seconds=time.monotonic() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _collect(proc: subprocess.Popen, cfg: SandboxConfig) -> tuple[bytes, bool, bool]:
    """Read the child's output until exit, deadline or the byte cap."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + cfg.timeout_s
    chunks: list[bytes] = []
    size = 0
    timed_out = truncated = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready = readable(fd, min(left, 0.5))
        if not ready:
            if proc.poll() is not None:
                # Exited; a grandchild may still hold the pipe open, so do not wait on EOF.
                ready = readable(fd, 0)
                if not ready:
                    break
            else:
                continue
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
        size += len(data)
        if size > cfg.max_output_bytes:
            truncated = True
            break
    if timed_out or truncated:
        _kill_group(proc)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
    proc.stdout.close()
    return b"".join(chunks)[: cfg.max_output_bytes], timed_out, truncated


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _shorten(text: str, limit: int) -> tuple[str, bool]:
    """Keep the head and the tail: errors and final results live at the ends."""
    if len(text) <= limit:
        return text, False
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n... [{cut} characters truncated] ...\n{text[-tail:]}", True

