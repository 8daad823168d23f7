"""The sandbox's kernel-enforced layers (seccomp, Landlock), tested from outside Python's reach.

Native code makes its own system calls: the audit hook never sees them. So these tests run native code (a C
library built here with the system's compiler, called through ctypes in a process that has the layers but
not the hook) and the routes model code took around the hook before (a C module's process creation, a
native library's own file reader), and require each to be refused with no secret in any output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aimokit import kernel_layers
from aimokit.config import ConfigError, SandboxConfig
from aimokit.sandbox import probe_layers, run_code
from aimokit.sessions import Session

SECRET = "KGAT_0123456789abcdef-planted"

NATIVE = r"""
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Each returns 0 when the kernel refused, else what got through (a byte count, a pid, a descriptor). */
int read_file(const char *path, char *out, int n) {
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    if (fd < 0) return 0;
    int got = (int)read(fd, out, n);
    close(fd);
    return got > 0 ? got : 0;
}
int exec_shell(void) {
    long pid = syscall(SYS_fork);   /* the raw call: no libc wrapper, no audit event */
    if (pid == 0) { char *argv[] = {"/bin/sh", "-c", "true", 0}; execve("/bin/sh", argv, 0); _exit(127); }
    if (pid < 0) {  /* no fork: try exec in place, which must fail too */
        char *argv[] = {"/bin/true", 0};
        execve("/bin/true", argv, 0);
        return 0;
    }
    int status; waitpid((pid_t)pid, &status, 0);
    return (int)pid;
}
int open_socket(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return 0;
    close(s);
    return s + 1;
}
int write_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}
"""


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("a C compiler is needed to test the layers against native code (apt-get install gcc)")
    d = tmp_path_factory.mktemp("native")
    (d / "probe.c").write_text(NATIVE)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(d / "probe.so"), str(d / "probe.c")], check=True)
    return d / "probe.so"


@pytest.fixture()
def planted(tmp_path) -> Path:
    """A credential outside every allowed tree, where a user's machine keeps them."""
    secret = tmp_path / "home" / ".kaggle" / "access_token"
    secret.parent.mkdir(parents=True)
    secret.write_text(SECRET)
    plain = tmp_path / "home" / "notes.txt"  # not a credential by name: only Landlock keeps it out
    plain.write_text(SECRET + "\n")
    return tmp_path / "home"


HARNESS = r"""
import ctypes, json, os, sys
sys.path.insert(0, {layers_dir!r})
import kernel_layers
lib = ctypes.CDLL({lib!r})  # loaded before the layers, as a model's import of a native module would be
layers = kernel_layers.apply_layers({roots!r}, os.getcwd(), {unavailable!r}) if {apply!r} else {{}}
buf = ctypes.create_string_buffer(200)
got = lib.read_file({secret!r}.encode(), buf, 200)
print(json.dumps({{"layers": layers, "read": buf.raw[:got].decode(errors="replace"),
                  "exec": lib.exec_shell(), "socket": lib.open_socket(),
                  "write": lib.write_file({outside!r}.encode()), "write_scratch": lib.write_file(b"ok.txt")}}))
"""


def _native(native: Path, planted: Path, tmp_path: Path, apply: bool = True, unavailable=()) -> dict:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    code = HARNESS.format(layers_dir=str(Path(kernel_layers.__file__).parent), lib=str(native),
                          roots=[sys.prefix, sys.base_prefix, str(native.parent)], unavailable=list(unavailable),
                          apply=apply, secret=str(planted / "notes.txt"), outside=str(planted / "dropped.txt"))
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=scratch, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_native_code_under_the_layers_cannot_read_exec_connect_or_write_outside(native, planted, tmp_path):
    free = _native(native, planted, tmp_path, apply=False)  # the same code with no layers: every route works
    assert free["read"].strip() == SECRET and free["exec"] > 0 and free["socket"] > 0 and free["write"] == 1
    (planted / "dropped.txt").unlink()
    held = _native(native, planted, tmp_path)
    assert held["layers"]["seccomp"] == "on" and held["layers"]["landlock"].startswith("abi ")
    assert held["read"] == "" and held["exec"] == 0 and held["socket"] == 0 and held["write"] == 0
    assert held["write_scratch"] == 1 and not (planted / "dropped.txt").exists()


def test_without_landlock_seccomp_still_holds_and_reads_are_not_kernel_bounded(native, planted, tmp_path):
    """A kernel without Landlock, simulated: seccomp still stops processes and sockets; what Landlock bounded
    (a plain file a native reader opens) is then open, which is why the policy decides whether code runs."""
    got = _native(native, planted, tmp_path, unavailable=["landlock"])
    assert got["layers"]["landlock"].startswith("off") and got["layers"]["seccomp"] == "on"
    assert got["exec"] == 0 and got["socket"] == 0 and got["read"].strip() == SECRET


PLANTED_ROUTES = {
    # a C module's process-creation entry point: no audit event
    "fork_exec": """import _posixsubprocess, os
r, w = os.pipe()
er, ew = os.pipe()
args = [[b"/bin/cat", b"{secret}"], [b"/bin/cat"], True, (), None, None, -1, -1, -1, w, -1, -1, er, ew,
        True, False, 0, None, None, None, -1, None]
try:
    pid = _posixsubprocess.fork_exec(*args, False)
except TypeError:
    pid = _posixsubprocess.fork_exec(*args)
os.close(w); os.close(ew)
print(os.read(r, 100))""",
    # a native library's own file reader
    "pyarrow": "import pyarrow.csv as c\nprint(c.read_csv('{secret}').column_names)",
    "pyarrow_fs": "import pyarrow.fs as f\nprint(f.LocalFileSystem().open_input_stream('{secret}').read())",
    # the routes the Python layer already held, still held
    "open": "print(open('{secret}').read())",
    "proc_root": "print(open('/proc/self/root{secret}').read())",
    "numpy": "import numpy\nprint(numpy.fromfile('{secret}', dtype='uint8').tobytes())",
    "fork": "import os\nprint(os.fork())",
    "socket": "import socket\ns = socket.socket()\nprint(s.connect(('127.0.0.1', 9)))",
}


@pytest.mark.parametrize("route", sorted(PLANTED_ROUTES))
def test_every_route_to_a_planted_secret_is_refused(route, planted):
    code = PLANTED_ROUTES[route].format(secret=str(planted / "notes.txt"))
    res = run_code(code, SandboxConfig(timeout_s=20.0))
    assert not res.ok and SECRET not in res.output and "KGAT" not in res.output, res.output
    free = run_code(code, SandboxConfig(timeout_s=20.0, kernel_layers=False, missing_layer="run"))
    if route in ("fork_exec", "pyarrow", "pyarrow_fs"):  # what only the kernel layers stop
        assert SECRET in free.output, free.output


def test_sympy_numpy_threads_and_sessions_keep_working_under_the_layers():
    code = ("import numpy, sympy, threading\nout = []\nt = threading.Thread(target=lambda: out.append(7))\n"
            "t.start(); t.join()\nprint(int(numpy.arange(4).sum()), sympy.factorint(360), out)")
    res = run_code(code, SandboxConfig(timeout_s=30.0))
    assert res.ok and res.output.strip() == "6 {2: 3, 3: 2, 5: 1} [7]", res.output
    s = Session(SandboxConfig(timeout_s=30.0))
    try:
        assert s.run("import numpy\nx = numpy.ones(3)").ok
        again = s.run("print(x.sum())\nimport os\nos.fork()")
        assert "3.0" in again.output and "PermissionError" in again.output
    finally:
        s.close()


def test_which_layers_hold_is_reported_and_a_missing_one_follows_the_policy(monkeypatch):
    assert probe_layers(SandboxConfig()) == {"seccomp": "on", "landlock": probe_layers(SandboxConfig())["landlock"],
                                             "netns": probe_layers(SandboxConfig())["netns"]}
    assert probe_layers(SandboxConfig())["landlock"].startswith("abi ")
    monkeypatch.setenv("AIMOKIT_SANDBOX_UNAVAILABLE", "landlock")  # a machine without Landlock, simulated
    layers = probe_layers(SandboxConfig())
    assert layers["landlock"].startswith("off") and layers["seccomp"] == "on"
    refused = run_code("print(6 * 7)", SandboxConfig())  # the default: refuse to run model code
    assert not refused.ok and "42" not in refused.output
    assert "landlock layer(s) are unavailable" in refused.output and "missing_layer = 'refuse'" in refused.output
    ran = run_code("print(6 * 7)", SandboxConfig(missing_layer="run"))
    assert ran.ok and ran.output.strip() == "42"
    with pytest.raises(ConfigError, match="sandbox.missing_layer = 'maybe': use refuse or run"):
        SandboxConfig(missing_layer="maybe")


def test_the_solver_asks_which_layers_hold_and_logs_them(fast_cfg, caplog):
    from fakes import ScriptedEngine

    from aimokit.engine import GenResult
    from aimokit.solver import Solver

    with caplog.at_level("INFO"):
        solver = Solver(ScriptedEngine(lambda p, r: GenResult("\\boxed{1}", 1, "eos")), fast_cfg.solver,
                        fast_cfg.sandbox, fast_cfg.competition)
    solver.close()
    assert solver.sandbox_layers["seccomp"] == "on" and "seccomp on" in caplog.text and "sandbox layers:" in caplog.text


def test_the_filter_is_the_program_it_says():
    """The BPF program checks the architecture first and ends in allow: a readable, fixed filter."""
    prog = kernel_layers.seccomp_program("x86_64")
    assert len(prog) % 8 == 0 and prog[8:16] != prog[-8:]
    assert prog[-8:] == kernel_layers._insn(kernel_layers._RET_K, 0, 0, kernel_layers._RET_ALLOW)
