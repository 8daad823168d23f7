"""Model-written LaTeX to an integer, within a hard time bound, from any thread.

math-verify (sympy underneath) can run without end on hostile input: a tower
of powers makes CPython compute a huge integer in one C call that holds the
GIL, so no timeout in the same process can stop it (math-verify's own
timeouts use SIGALRM, which only works on the main thread anyway). Three
layers keep a five-hour run safe from one sample's text:

1. a guard on size and shape that refuses what no answer looks like
   (thousands of characters, deep brace nesting, thousands of digits);
2. fast paths for what answers usually are (`42`, `1{,}042`, `-7`), which never
   reach sympy;
3. everything else goes to a helper process that is killed and replaced when
   it misses its deadline, so the caller returns within `timeout_s` and the rest
   of the process keeps running meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

from .io import readable

log = logging.getLogger(__name__)

MAX_CHARS = 2000  # a boxed answer longer than this is not an integer answer
MAX_DEPTH = 40  # brace nesting
MAX_DIGITS = 1000  # an integer with more digits is no competition answer
TIMEOUT_S = 1.0

_PLAIN_INT = re.compile(r"-?\d{1,%d}" % MAX_DIGITS)  # any decimal digits: int() reads them all
# Thousands separators as models write them: 1,042  1{,}042  1\,042  1\ 042  1 042
_SEPARATED = re.compile(r"-?\d{1,3}(?:(?:,|\{,\}|\\,|\\ | )\d{3})+")
_WRAPPERS = re.compile(r"^(?:\\text|\\mathrm|\\mathbf|\\textbf)\{(.*)\}$", re.DOTALL)


def guard(expr: str) -> str | None:
    """Why `expr` is refused before any parser sees it, or None if it may be parsed."""
    if len(expr) > MAX_CHARS:
        return f"{len(expr)} characters (limit {MAX_CHARS})"
    depth = worst = 0
    for ch in expr:
        if ch == "{":
            depth += 1
            worst = max(worst, depth)
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return "unbalanced braces"
    if depth:
        return "unbalanced braces"
    if worst > MAX_DEPTH:
        return f"brace nesting {worst} (limit {MAX_DEPTH})"
    if re.search(r"\d{%d}" % (MAX_DIGITS + 1), expr):
        return f"a number of more than {MAX_DIGITS} digits"
    return None


def fast_integer(expr: str) -> int | None:
    """The integer an answer plainly is, without sympy; None when it is not that plain."""
    s = expr.strip().strip("$").strip()
    m = _WRAPPERS.match(s)
    if m:
        s = m.group(1).strip()
    if _PLAIN_INT.fullmatch(s):
        return int(s)
    if _SEPARATED.fullmatch(s):
        return int(re.sub(r"\D", "", s)) * (-1 if s.startswith("-") else 1)
    return None


# The helper's loop: one JSON request per line in, one JSON reply per line out.
_WORKER = r'''
import json, os, resource, sys
sys.path[:0] = json.loads(sys.argv[1])
try:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
except (ValueError, OSError):
    pass
sys.set_int_max_str_digits(0)
import sympy
from math_verify import parse, verify
LIMIT = 10 ** int(sys.argv[2])

def integer(expr):
    for value in parse("$" + expr + "$", parsing_timeout=None):
        if not isinstance(value, sympy.Basic):
            continue
        try:
            if not (value.is_number and value.is_real):
                continue
            v = sympy.nsimplify(value) if value.is_Float else value
            if v.is_integer:
                v = int(v)
                return v if abs(v) < LIMIT else None
            f = float(value)
            if f.is_integer() and abs(f) < 1e15:
                return int(f)
        except (TypeError, ValueError, OverflowError):
            continue
    return None

out = sys.stdout
out.write("ready\n"); out.flush()
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "int":
            res = integer(req["a"])
        else:
            res = bool(verify(parse("$" + req["a"] + "$", parsing_timeout=None),
                              parse("$" + req["b"] + "$", parsing_timeout=None), timeout_seconds=None))
        reply = {"ok": True, "value": None if res is None else (res if isinstance(res, bool) else str(res))}
    except Exception as e:
        reply = {"ok": False, "error": repr(e)[:200]}
    out.write(json.dumps(reply) + "\n"); out.flush()
'''


class ParseWorker:
    """One helper process for sympy work, replaced whenever a call runs out of time.

    Calls are serialised by a lock: parsing is rare (the fast paths take the
    common answers), and a second caller waits at most one timeout.
    """

    def __init__(self, timeout_s: float = TIMEOUT_S, start_timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.buf = b""
        self.kills = 0

    def start(self, wait: bool = False) -> bool:
        """Start the helper now (importing sympy takes a second or two) so the first call need not wait.

        With `wait`, block until it is ready (at most `start_timeout_s`); returns whether it is.
        """
        with self.lock:
            self._spawn()
            if wait and not self.ready:
                self.ready = self._readline(time.monotonic() + self.start_timeout_s) == b"ready"
            return self.ready

    def _spawn(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, json.dumps([p for p in sys.path if p]), str(MAX_DIGITS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the kit is not the helper's business
        )
        self.ready, self.buf = False, b""

    def _kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        self.proc, self.ready, self.buf = None, False, b""

    def _readline(self, deadline: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready = readable(fd, left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None  # the helper died
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def call(self, request: dict, timeout_s: float | None = None) -> dict | None:
        """The helper's reply, or None when it failed or ran out of time (it is then replaced).

        `timeout_s` lowers the bound for this call (a caller near its deadline); waiting
        for a helper that is still starting counts against it too.
        """
        budget = self.timeout_s if timeout_s is None else min(self.timeout_s, timeout_s)
        if budget <= 0:
            return None
        end = time.monotonic() + budget
        with self.lock:
            try:
                self._spawn()
                if not self.ready:
                    started = self.proc
                    line = self._readline(min(end, time.monotonic() + self.start_timeout_s))
                    if line is None and self.proc is started and self.proc.poll() is None:
                        return None  # still importing sympy: this caller cannot wait, the next one may
                    if line != b"ready":
                        log.error("math parser helper did not start; answers needing sympy are skipped")
                        self._kill()
                        return None
                    self.ready = True
                assert self.proc is not None and self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
                line = self._readline(end)
                if line is None:
                    self.kills += 1
                    log.warning("math parser helper exceeded %.1fs on %.80r; killed and replaced",
                                budget, request.get("a"))
                    self._kill()
                    self._spawn()  # the replacement starts now, so the next caller need not wait for it
                    return None
                return json.loads(line)
            except (OSError, ValueError):
                self._kill()
                return None

    def close(self) -> None:
        with self.lock:
            self._kill()


_worker = ParseWorker()


def shared_worker() -> ParseWorker:
    return _worker


def to_integer(expr: str, worker: ParseWorker | None = None, timeout_s: float | None = None) -> int | None:
    """The integer value of a LaTeX expression, or None; returns within about `TIMEOUT_S` (or `timeout_s`).

    With `timeout_s <= 0` only the guard and the fast paths run: no helper, no waiting.
    """
    if not isinstance(expr, str) or guard(expr) is not None:
        return None
    fast = fast_integer(expr)
    if fast is not None:
        return fast
    s = expr.strip().strip("$").strip()
    if not s or not re.search(r"\d", s):
        return None  # no digit: no integer answer (and no sympy round trip for prose)
    reply = (worker or _worker).call({"op": "int", "a": s}, timeout_s)
    if not reply or not reply.get("ok") or reply.get("value") is None:
        return None
    return int(reply["value"])


def equivalent(a: str, b: str, worker: ParseWorker | None = None) -> bool:
    """math-verify equivalence of two expressions, bounded like `to_integer`; False when unknown."""
    if guard(a) is not None or guard(b) is not None:
        return False
    fa, fb = fast_integer(a), fast_integer(b)
    if fa is not None and fb is not None:
        return fa == fb
    reply = (worker or _worker).call({"op": "verify", "a": a, "b": b})
    return bool(reply and reply.get("ok") and reply.get("value"))
