"""The sandbox against what model-written code can do wrong (or badly)."""

import os
import socket
import threading
import time

import pytest

from aimokit.config import SandboxConfig
from aimokit.sandbox import run_code, run_many

CFG = SandboxConfig(timeout_s=3.0, memory_mb=512, max_output_chars=300, max_output_bytes=64 * 1024)


def test_runs_code_with_sympy_and_numpy_and_shows_last_expression():
    r = run_code("import sympy as sp, numpy as np\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 4, x))\nint(np.arange(5).sum())", CFG)
    assert r.ok, r.output
    assert r.output.splitlines() == ["[-2, 2]", "10"]


def test_infinite_loop_is_killed_at_the_wall_time_limit():
    t = time.monotonic()
    r = run_code("while True:\n    pass", CFG)
    assert r.timed_out and not r.ok
    assert time.monotonic() - t < CFG.timeout_s + 3
    assert "timed out" in r.for_model()


def test_memory_bomb_fails_inside_the_child_and_host_is_fine():
    r = run_code("x = bytearray(8 * 1024**3)\nprint('allocated')", CFG)
    assert not r.ok and "MemoryError" in r.output and "allocated" not in r.output
    r = run_code("a = []\nwhile True:\n    a.append(bytearray(50 * 1024**2))", CFG)
    assert not r.ok and ("MemoryError" in r.output or r.timed_out)
    assert run_code("print(1)", CFG).output == "1"  # the sandbox still works afterwards


def test_network_attempt_is_refused_and_never_reaches_the_server():
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
    r = run_code(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')", CFG)
    th.join()
    srv.close()
    assert not r.ok and "connected" not in r.output
    assert "network" in r.output or "Errno" in r.output
    assert got == []
    r = run_code("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)", CFG)
    assert not r.ok


def test_writes_outside_scratch_are_refused_inside_allowed(tmp_path):
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
    r = run_code(code, CFG)
    assert r.ok, r.output
    assert r.output.splitlines() == ["refused"] * 5 + ["ok True"]
    assert not target.exists() and victim.read_text() == "keep me"


def test_output_flood_is_cut_and_the_process_group_killed():
    t = time.monotonic()
    r = run_code("while True:\n    print('x' * 1000)", CFG)
    assert r.truncated and not r.ok
    assert time.monotonic() - t < CFG.timeout_s  # killed on the cap, not the clock
    assert len(r.output) < CFG.max_output_chars + 100 and "truncated" in r.output


def test_errors_show_the_cells_traceback_only():
    r = run_code("def f():\n    return 1 / 0\nf()", CFG)
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


def test_run_many_runs_in_parallel_in_order():
    t = time.monotonic()
    rs = run_many([(f"import time\ntime.sleep(1)\nprint({i})", "") for i in range(4)],
                  SandboxConfig(timeout_s=5, workers=4))
    assert [r.output for r in rs] == ["0", "1", "2", "3"]
    assert time.monotonic() - t < 3.5
