"""The sandbox against what model-written code can do wrong (or badly)."""

import os
import socket
import threading
import time

import pytest

from aimokit.config import SandboxConfig
from aimokit.sandbox import run_code
from aimokit.sessions import Session

CFG = SandboxConfig(timeout_s=3.0, memory_mb=512, max_output_chars=300, max_output_bytes=64 * 1024)


@pytest.fixture(params=["process", "session"])
def run(request):
    """Every attack runs twice: in a fresh process per block, and in a persistent session (one per config)."""
    if request.param == "process":
        yield run_code
        return
    sessions: dict[int, Session] = {}

    def in_session(code, cfg):
        if id(cfg) not in sessions:
            sessions[id(cfg)] = Session(cfg)
        return sessions[id(cfg)].run(code)

    yield in_session
    for s in sessions.values():
        s.close()


def test_runs_code_with_sympy_and_numpy_and_shows_last_expression(run):
    r = run("import sympy as sp, numpy as np\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 4, x))\nint(np.arange(5).sum())", CFG)
    assert r.ok, r.output
    assert r.output.splitlines() == ["[-2, 2]", "10"]


def test_infinite_loop_is_killed_at_the_wall_time_limit(run):
    t = time.monotonic()
    r = run("while True:\n    pass", CFG)
    assert r.timed_out and not r.ok
    assert time.monotonic() - t < CFG.timeout_s + 3
    assert "timed out" in r.for_model()


def test_memory_bomb_fails_inside_the_child_and_host_is_fine(run):
    r = run("x = bytearray(8 * 1024**3)\nprint('allocated')", CFG)
    assert not r.ok and "MemoryError" in r.output and "allocated" not in r.output
    r = run("a = []\nwhile True:\n    a.append(bytearray(50 * 1024**2))", CFG)
    assert not r.ok and ("MemoryError" in r.output or r.timed_out)
    assert run("print(1)", CFG).output == "1"  # the sandbox still works afterwards


def test_network_attempt_is_refused_and_never_reaches_the_server(run):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(4)
    port = srv.getsockname()[1]
    got = []

    def accept():
        try:
            conn, _ = srv.accept()
            got.append(conn)
        except OSError:
            pass

    th = threading.Thread(target=accept)
    th.start()
    r = run(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')", CFG)
    th.join()
    srv.close()
    assert not r.ok and "connected" not in r.output
    assert "network" in r.output or "Errno" in r.output
    assert got == []
    r = run("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)", CFG)
    assert not r.ok


def test_writes_outside_scratch_are_refused_inside_allowed(tmp_path, run):
    target = tmp_path / "outside.txt"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    code = (
        f"import os, shutil\n"
        f"for f in [lambda: open({str(target)!r}, 'w').write('x'), lambda: os.remove({str(victim)!r}),\n"
        f"          lambda: os.rename({str(victim)!r}, 'stolen'), lambda: shutil.rmtree({str(tmp_path)!r}),\n"
        f"          lambda: os.system('touch {target}')]:\n"
        f"    try:\n        f(); print('DONE')\n    except PermissionError as e:\n        print('refused')\n"
        f"open('inside.txt', 'w').write('ok'); print(open('inside.txt').read(), os.path.abspath('.') != {str(tmp_path)!r})"
    )
    r = run(code, CFG)
    assert r.ok, r.output
    assert r.output.splitlines() == ["refused"] * 5 + ["ok True"]
    assert not target.exists() and victim.read_text() == "keep me"


def test_output_flood_is_cut_and_the_process_group_killed(run):
    t = time.monotonic()
    r = run("while True:\n    print('x' * 1000)", CFG)
    assert r.truncated and not r.ok
    assert time.monotonic() - t < CFG.timeout_s  # killed on the cap, not the clock
    assert len(r.output) < CFG.max_output_chars + 100 and "truncated" in r.output


def test_errors_show_the_cells_traceback_only(run):
    r = run("def f():\n    return 1 / 0\nf()", CFG)
    assert not r.ok and r.returncode == 1
    assert "ZeroDivisionError" in r.output and "<cell>" in r.output and "_hook" not in r.output


def test_cumulative_prelude_keeps_earlier_names_but_not_their_output():
    r = run_code("print(a + 1)", CFG, prelude="a = 41\nprint('earlier output')")
    assert r.ok and r.output == "42"


def test_scratch_directory_is_removed_and_runs_are_isolated():
    first = run_code("import os\nopen('f.txt','w').write('1')\nprint(os.getcwd())", CFG)
    assert first.ok and not os.path.exists(first.output)
    second = run_code("import os\nprint(os.path.exists('f.txt'))", CFG)
    assert second.output == "False"


def _plant_secret(tmp_path):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    secret = home / ".kaggle" / "kaggle.json"
    secret.write_text('{"username": "alice", "key": "SECRET-KEY-0123"}')
    return home, secret


READ_ATTEMPTS = [
    "open({p!r}).read()",
    "__import__('pathlib').Path({p!r}).read_bytes()",
    "__import__('os').read(__import__('os').open({p!r}, 0), 100)",
    "__import__('io').open_code({p!r}).read()",
    "__import__('linecache').getline({p!r}, 1)",
    "__import__('importlib.machinery').machinery.SourceFileLoader('x', {p!r}).get_data({p!r})",
    "__import__('shutil').copyfile({p!r}, 'copy.json')",
    "__import__('os').symlink({p!r}, 'link.json') or open('link.json').read()",
    "__import__('os').listdir({d!r})",
    "__import__('glob').glob({d!r} + '/*')",
    "open('/etc/passwd').read()",
    "open('/proc/self/environ').read()",
]


@pytest.mark.parametrize("attempt", READ_ATTEMPTS)
def test_reads_outside_the_allowlist_are_refused_and_no_secret_leaks(tmp_path, attempt, run):
    home, secret = _plant_secret(tmp_path)
    code = f"try:\n    print(repr({attempt.format(p=str(secret), d=str(secret.parent))}))\nexcept PermissionError as e:\n    print('refused:', e)"
    r = run(code, CFG)
    assert "SECRET-KEY" not in r.output and "alice" not in r.output
    # linecache and glob swallow the refusal themselves and return nothing
    assert "refused: sandbox:" in r.output or r.output in ("''", "[]"), r.output


def test_a_credential_is_refused_even_inside_an_allowed_folder(tmp_path, run):
    home, secret = _plant_secret(tmp_path)
    (home / "data.txt").write_text("12345")
    env = home / ".env"
    env.write_text("TOKEN=SECRET-KEY-0123")
    cfg = SandboxConfig(**{**CFG.__dict__, "read_paths": [str(home)]})
    r = run(f"print(open({str(home / 'data.txt')!r}).read())", cfg)
    assert r.ok and r.output == "12345"  # what the config names can be read
    for path in (secret, env):
        r = run(f"print(open({str(path)!r}).read())", cfg)
        assert not r.ok and "SECRET-KEY" not in r.output and "not allowed" in r.output


def test_python_libraries_and_scratch_stay_readable(run):
    r = run("import sympy, numpy, json, os\nopen('a.txt','w').write('x')\n"
                 "print(open('a.txt').read(), sorted(set(os.listdir('.')) - {'main.py'}))\n"
                 "print(len(open(json.__file__).read()) > 100)", CFG)
    assert r.ok, r.output
    # the scratch folder holds what the code wrote (beside the code file itself); the libraries stay readable
    assert r.output.splitlines() == ["x ['a.txt']", "True"]


TAMPER = [  # model code that tries to switch the guard off from inside before reading
    "import sys\nm = sys.modules['__main__']\nm._READ_ROOTS = ('',)\nm._secret = lambda r: False\n"
    "m._readable = lambda p: True\nm._inside = lambda p: True",
    "import builtins\nbuiltins.any = lambda it: True\nbuiltins.isinstance = lambda *a: True",
    "import os.path\nos.path.realpath = lambda p, **k: '/tmp'\nimport os\nos.fspath = lambda p: '/tmp'",
    "import gc\nfns = [f for f in gc.get_objects() if callable(f)]",
]


@pytest.mark.parametrize("tamper", TAMPER)
def test_the_guard_cannot_be_switched_off_from_inside(tmp_path, tamper, run):
    """The hook's state lives in closures and captured builtins, not in globals the model can rebind."""
    home, secret = _plant_secret(tmp_path)
    code = (f"try:\n" + "".join(f"    {line}\n" for line in tamper.splitlines())
            + f"except Exception as e:\n    print('tamper refused:', type(e).__name__)\n"
            f"try:\n    print(open({str(secret)!r}).read())\nexcept Exception as e:\n    print('read refused:', e)\n")
    r = run(code, CFG)
    assert "SECRET-KEY" not in r.output, r.output
    assert "read refused: sandbox:" in r.output or "tamper refused" in r.output, r.output
