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


# Runs inside the child. Kept free of aimokit imports: `-I` isolates the child
# from the kit's environment variables and user site.
_GUARD = r'''
import sys, os, resource, ast, io, contextlib, traceback
_cfg = {cfg!r}
def _lim(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass
_lim(resource.RLIMIT_AS, _cfg["memory"])
_lim(resource.RLIMIT_CPU, _cfg["cpu"])
_lim(resource.RLIMIT_FSIZE, _cfg["fsize"])
_lim(resource.RLIMIT_CORE, 0)
# A private network namespace: no route anywhere. Needs privileges or user
# namespaces; when refused, the audit hook below still blocks sockets.
_netns = "off: unshare refused"
try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.unshare(0x40000000) == 0 or _libc.unshare(0x10000000 | 0x40000000) == 0:  # NEWNET, NEWUSER|NEWNET
        _netns = "on"
    del _libc
except Exception:
    pass
def _roots():
    import sysconfig
    cands = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path, *_cfg["read_paths"]]
    cands += [p for k, p in sysconfig.get_paths().items()]
    out = set()
    for c in cands:
        if c and os.path.exists(c):
            r = os.path.realpath(c)
            if r != os.sep:  # never the whole file system
                out.add(r)
    return tuple(sorted(out))
_cfg["roots"] = _roots()
# The kernel-enforced layers (aimokit/kernel_layers.py, embedded here): seccomp and Landlock, before any model code.
#@LAYERS@
_layers = {{"seccomp": "off: sandbox.kernel_layers = false", "landlock": "off: sandbox.kernel_layers = false"}}
if _cfg["kernel_layers"]:
    try:
        _layers = apply_layers(_cfg["roots"], os.path.realpath(os.getcwd()), _cfg["unavailable"])
    except Exception as e:  # a layer that cannot be applied is reported, never a crash before the code runs
        _layers = {{"seccomp": f"off: {{e!r}}", "landlock": f"off: {{e!r}}"}}
_layers["netns"] = _netns
_missing = [k for k in ("seccomp", "landlock") if not (_layers[k] == "on" or _layers[k].startswith("abi"))]
_REFUSED = None
if _missing and _cfg["missing_layer"] == "refuse":
    _REFUSED = ("sandbox: code is not run here: the kernel's " + " and ".join(_missing) + " layer(s) are unavailable "
                "(" + "; ".join(_layers[k] for k in _missing) + ") and sandbox.missing_layer = 'refuse'")
# Everything the hook reads lives in this function's closure, and every builtin or library function it calls
# is captured here: model code can rebind __main__'s globals, builtins or os.path, and the hook never sees it.
def _install(_cfg, any=any, all=all, isinstance=isinstance, int=int, str=str, bytes=bytes, set=set, tuple=tuple,
             sorted=sorted, Exception=Exception, PermissionError=PermissionError):
    _scratch = os.path.realpath(os.getcwd())
    _sep = os.sep
    _READ_ROOTS = _cfg["roots"]
    _READ_FILES = {{"/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"}}
    _SECRET_NAMES = {{"kaggle.json", ".env", ".netrc", ".git-credentials", ".pypirc", "credentials", "token",
                     "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".bash_history", ".python_history",
                     "application_default_credentials.json"}}
    _SECRET_DIRS = {{".ssh", ".kaggle", ".aws", ".gnupg", ".docker", ".huggingface", "gcloud", ".azure"}}
    def _secret(r):
        parts = r.split(_sep)
        name = parts[-1]
        return (name in _SECRET_NAMES or name.startswith(".env.") or name.endswith((".pem", ".key", ".p12"))
                or any(d in _SECRET_DIRS for d in parts[:-1]))
    _W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _realpath = os.path.realpath
    _fspath = os.fspath
    def _inside(p):
        if isinstance(p, int):
            return True
        try:
            p = _fspath(p)
            if isinstance(p, bytes):
                p = p.decode(errors="replace")
            if p in ("/dev/null",):
                return True
            r = _realpath(p)
        except Exception:
            return False
        return r == _scratch or r.startswith(_scratch + _sep)
    def _readable(p):
        if isinstance(p, int) or _inside(p):
            return True
        try:
            p = _fspath(p)
            if isinstance(p, bytes):
                p = p.decode(errors="replace")
            r = _realpath(p)
        except Exception:
            return False
        if r in _READ_FILES:
            return True
        if _secret(r):
            return False
        return any(r == root or r.startswith(root + _sep) for root in _READ_ROOTS)
    def _refuse_read(p):
        raise PermissionError(f"sandbox: reading {{p!r}} is not allowed; only the current directory, Python's "
                              "libraries and sandbox.read_paths can be read")
    _LIST_EVENTS = {{"os.listdir", "os.scandir"}}
    _PATH_EVENTS = {{"os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown",
                    "os.utime", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr",
                    "shutil.rmtree", "shutil.chown"}}
    _TWO_PATH_EVENTS = {{"os.rename", "os.link", "os.symlink", "shutil.move", "shutil.copyfile",
                        "shutil.copytree"}}
    _BLOCKED = {{"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "ctypes.dlopen",
                "ctypes.dlsym", "ctypes.addressof", "ctypes.cdata", "sys.remote_exec", "os.startfile",
                "gc.get_objects", "gc.get_referrers", "gc.get_referents",  # would reach the hook's closure
                "webbrowser.open", "urllib.Request"}}
    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _W)
            if writing and not _inside(path):
                raise PermissionError(f"sandbox: writing {{path!r}} is not allowed; "
                                      "write inside the current directory")
            if not writing and not _readable(path):
                _refuse_read(path)
        elif event in _LIST_EVENTS:
            if args and args[0] is not None and not _readable(args[0]):
                _refuse_read(args[0])
        elif event == "sqlite3.connect":
            if args and args[0] != ":memory:" and not _inside(args[0]):
                raise PermissionError("sandbox: databases outside the current directory are not allowed")
        elif event in _PATH_EVENTS:
            if args and not _inside(args[0]):
                raise PermissionError(f"sandbox: {{event}} on {{args[0]!r}} is not allowed outside the scratch directory")
        elif event in _TWO_PATH_EVENTS:
            if not all(_inside(a) for a in args[:2]):
                raise PermissionError(f"sandbox: {{event}} outside the scratch directory is not allowed")
        elif event in _BLOCKED:
            kind = "network access" if event.startswith(("socket", "urllib")) else event
            raise PermissionError(f"sandbox: {{kind}} is disabled")
    sys.addaudithook(_hook)
_install(_cfg)
del _install, _cfg, _roots
del resource
def _cell(_code, _g):
    """Run one cell in `_g`, showing its last expression's value; False if it raised (SystemExit passes)."""
    if _REFUSED:
        sys.stderr.write(_REFUSED + "\n")
        sys.stderr.flush()
        return False
    try:
        _tree = ast.parse(_code, "<cell>")
        _last = _tree.body.pop() if _tree.body and isinstance(_tree.body[-1], ast.Expr) else None
        exec(compile(_tree, "<cell>", "exec"), _g)
        if _last is not None:
            _v = eval(compile(ast.Expression(_last.value), "<cell>", "eval"), _g)
            if _v is not None:
                print(repr(_v))
    except SystemExit:
        raise
    except BaseException as e:
        sys.stdout.flush()
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        # Keep the cell's own frames: the model cannot act on bootstrap frames.
        keep = [tb[0]] + [t for t in tb[1:-1] if '"<cell>"' in t] + [tb[-1]]
        sys.stderr.write("".join(keep))
        sys.stderr.flush()
        return False
    return True
'''

# One block, then exit: the fresh-process sandbox. main.py / prelude.py are read before the hook
# is installed (they sit in the scratch directory, which is readable anyway).
_ONE_SHOT = r'''
_code = open("main.py", encoding="utf-8").read()
_prelude = open("prelude.py", encoding="utf-8").read() if os.path.exists("prelude.py") else ""
_g = {"__name__": "__main__", "__builtins__": __builtins__}
if _prelude:
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(_prelude, "<previous cells>", "exec"), _g)
    except BaseException:
        pass
try:
    _ok = _cell(_code, _g)
except SystemExit as e:
    sys.stdout.flush()
    os._exit(e.code if isinstance(e.code, int) else 0)
sys.stdout.flush()
if not _ok:
    os._exit(1)
'''


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
    boot = _GUARD.format(cfg={
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
        proc = spawn(cfg, scratch, _ONE_SHOT, cpu_s=int(cfg.timeout_s) + 2)
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

