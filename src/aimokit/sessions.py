"""Persistent Python sessions: one stateful interpreter per live sample, instead of a process per block.

Why a lean REPL process of our own rather than Jupyter kernels: it is the very
sandbox child (`sandbox.spawn`: rlimits, network namespace, audit hook, reads
from a list, writes only to its scratch directory), kept alive and fed blocks
over a pipe. A Jupyter kernel would bring ZeroMQ sockets, which the audit hook
refuses and the namespace cuts off, and a second process tree to police; what
it adds (rich display, comms) no model needs. What a session keeps:

- names persist between calls, so earlier blocks are never re-run;
- each call gets `sandbox.timeout_s` of wall time; past it the session is
  interrupted (SIGINT: the model sees KeyboardInterrupt and its names survive),
  and if it does not answer within a second it is killed and a fresh one takes
  its place (the model is told its state is gone);
- output over the cap kills and replaces it too; a session that dies (killed,
  out of memory) is replaced on the next call, never taking the kernel along;
- a pool keeps spare sessions started ahead (`sandbox.session_pool`, default
  twice the samples in flight) and is reset between problems.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Hashable

from .config import SandboxConfig
from .io import readable
from .sandbox import ExecResult, _kill_group, _shorten, spawn

DONE = b"\x00AIMOKIT-DONE "  # what the session prints after each call: the marker, then ok/error and a newline

# The session's loop, after the guard. Blocks arrive as "<bytes>\n<code>" on stdin.
_LOOP = r'''
import signal as _signal
_signal.signal(_signal.SIGINT, _signal.default_int_handler)
_g = {"__name__": "__main__", "__builtins__": __builtins__}
_in = sys.stdin.buffer
_out = sys.stdout.buffer
while True:
    _head = _in.readline()
    if not _head:
        os._exit(0)
    _code = _in.read(int(_head)).decode("utf-8", errors="replace")
    try:
        _ok = b"ok" if _cell(_code, _g) else b"error"
    except SystemExit:
        _ok = b"ok"
    sys.stdout.flush()
    sys.stderr.flush()
    _out.write(b"\n" + @DONE@ + _ok + b"\n")
    _out.flush()
'''.replace("@DONE@", repr(DONE))


class Session:
    """One guarded interpreter that keeps its names between calls (see the module docstring)."""

    INTERRUPT_GRACE_S = 1.0
    LIFE_CPU_S = 3600  # RLIMIT_CPU over the session's life: a backstop; the wall clock bounds each call

    def __init__(self, cfg: SandboxConfig):
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self.scratch: Path | None = None
        self._start()

    def _start(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="aimokit-session-"))
        self.proc = spawn(self.cfg, self.scratch, _LOOP, cpu_s=self.LIFE_CPU_S, stdin=subprocess.PIPE)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, code: str) -> ExecResult:
        """Run one block in this session; never raises for anything the code does."""
        start = time.monotonic()
        note = ""
        if not self.alive():  # died since the last call (killed, out of memory): a fresh one, and say so
            self.restart()
            note = "SessionRestarted: the Python session had died; earlier names are gone\n"
        data = code.encode("utf-8", errors="replace")
        try:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(b"%d\n" % len(data) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.restart()
            return ExecResult("SessionRestarted: the Python session had died; earlier names are gone; run it again",
                              False, None, seconds=time.monotonic() - start)
        out, status, timed_out, truncated = self._collect()
        text = out.decode("utf-8", errors="replace").rstrip("\n")
        if timed_out and status is None:  # ExecResult.for_model adds the TimeoutError line itself
            text += "\nSessionRestarted: the call would not stop when interrupted; the session's names are gone"
        elif status is None and not truncated:
            rc = self.proc.poll() if self.proc else None
            text += f"\nKilledError: the session's process died (signal {-rc if rc and rc < 0 else rc}); its names are gone"
        text, cut = _shorten(note + text.strip("\n"), self.cfg.max_output_chars)
        if status is None:  # timed out past the grace, flooded, or died: a fresh session next time
            self.restart()
        return ExecResult(output=text, ok=status == b"ok" and not timed_out and not truncated and not cut,
                          returncode=0 if status == b"ok" else 1, timed_out=timed_out, truncated=truncated or cut,
                          seconds=time.monotonic() - start)

    def _collect(self) -> tuple[bytes, bytes | None, bool, bool]:
        """Output until the DONE marker; (output, b"ok"/b"error" or None if none came, timed out, truncated)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.cfg.timeout_s
        interrupted = False
        buf = b""
        while True:
            i = buf.find(DONE)
            if i >= 0 and buf.find(b"\n", i) >= 0:
                status = buf[i + len(DONE): buf.find(b"\n", i)]
                return buf[:i], status, interrupted, False
            if len(buf) > self.cfg.max_output_bytes:
                return buf[: self.cfg.max_output_bytes], None, False, True
            left = deadline - time.monotonic()
            if left <= 0:
                if interrupted:
                    return buf, None, True, False
                try:  # KeyboardInterrupt in the cell: the names survive
                    os.killpg(self.proc.pid, signal.SIGINT)
                except (ProcessLookupError, PermissionError):
                    pass
                interrupted = True
                deadline = time.monotonic() + self.INTERRUPT_GRACE_S
                continue
            ready = readable(fd, min(left, 0.5))
            if not ready:
                if self.proc.poll() is not None:
                    return buf, None, False, False
                continue
            data = os.read(fd, 65536)
            if not data:
                return buf, None, False, False
            buf += data

    def restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    if f:
                        f.close()
                except OSError:
                    pass
            self.proc = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


PRELOAD = "import sympy as _p1, numpy as _p2\ndel _p1, _p2"  # imported ahead by spares: a model's import is then free


def _raise_fd_limit() -> None:
    """Each session holds two pipes in this process: 2x the samples in flight reaches 1,024 descriptors (a
    common soft limit) at 256 samples, so the soft limit goes up to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


class SessionPool:
    """Sessions by owner (a sample), handed out from spares started ahead (sympy and numpy imported); thread-safe."""

    def __init__(self, cfg: SandboxConfig, spare: int):
        _raise_fd_limit()
        self.cfg = cfg
        self.spare_target = max(0, spare)
        self.lock = threading.Lock()
        self.spare: list[Session] = []
        self.owned: dict[Hashable, Session] = {}
        self.started = 0
        self.starting = 0  # spares being started right now
        self.closers: list[threading.Thread] = []  # background resets still killing old sessions
        self.closed = False

    def warm(self, threads: int = 1) -> None:
        """Start spares up to the target (the engine generates meanwhile, so the first call waits on none).

        `threads` > 1 starts that many at once (each imports sympy and numpy: about a second of one core),
        for a start-up that has cores to spare, before the engine runs."""
        if threads > 1:
            workers = [threading.Thread(target=self.warm, daemon=True) for _ in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return
        while True:
            with self.lock:  # a slot is taken before the start, so threads warming at once never overshoot
                if self.closed or len(self.spare) + self.starting >= self.spare_target:
                    return
                self.starting += 1
            try:
                s = Session(self.cfg)
                s.run(PRELOAD)
            finally:
                with self.lock:
                    self.starting -= 1
            with self.lock:
                self.started += 1
                if not self.closed:
                    self.spare.append(s)
                    continue
            s.close()  # the pool closed while this one started: it must not outlive it
            return

    def run(self, owner: Hashable, code: str) -> ExecResult:
        with self.lock:
            session = self.owned.get(owner)
            if session is None:
                session = self.spare.pop() if self.spare else None
        if session is None:
            session = Session(self.cfg)
            with self.lock:
                self.started += 1
        with self.lock:
            self.owned[owner] = session
        return session.run(code)

    def reset(self, wait: bool = True) -> None:
        """Between problems: every owned session goes (its state with it); spares stay fresh.

        The owners are forgotten at once; `wait=False` kills the old processes on a thread of their own (about
        10 ms each: 64 of them would hold up the next problem's first round for most of a second)."""
        with self.lock:
            owned, self.owned = list(self.owned.values()), {}
        self._close_later(owned, wait)

    def release(self, owners: list[Hashable]) -> None:
        """These owners' sessions go (a problem finished while others run on); killed on a thread of their own."""
        with self.lock:
            owned = [s for s in (self.owned.pop(o, None) for o in owners) if s is not None]
        if owned:
            self._close_later(owned, wait=False)

    def _close_later(self, owned: list[Session], wait: bool) -> None:
        def close_all() -> None:
            for s in owned:
                s.close()

        if wait:
            close_all()
        else:
            closer = threading.Thread(target=close_all, name="sessions-reset", daemon=True)
            closer.start()
            self.closers = [c for c in self.closers if c.is_alive()] + [closer]

    def close(self) -> None:
        with self.lock:
            self.closed = True
        self.reset()
        for closer in self.closers:  # background resets finish before close returns: nothing outlives the pool
            closer.join()
        self.closers.clear()
        with self.lock:
            spare, self.spare = self.spare, []
        for s in spare:
            s.close()
