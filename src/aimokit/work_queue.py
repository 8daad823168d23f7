"""The one queue of an evaluation spread over engines: who took which problem, what came back, what is lost.

Why one: `evaluate --workers` (engines on one machine) and `evaluate --ray` (engines on many) hand out
problems the same way, so they share this class: on Ray it is an actor, for `--workers` it is served to
the worker processes over a local socket (multiprocessing.managers). An engine `take`s the next problem
when it has room, as the streaming solver draws them; its results come back through `finish`, which is
when a problem counts as done; a worker that dies (`lost`) sends the problems it held back to the front
of the queue, each at most `retries` times, after which the problem is failed with the reasons. A problem
is therefore done at most once, and never lost silently.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from typing import Any, Callable

LOG_LINES = 40  # the last lines of each worker's log kept, to name a failure with


def _locked(method: Callable) -> Callable:
    """One call at a time: the local server answers each worker process on its own thread."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return call


class WorkQueue:
    """Problems (dicts) out to workers by name; results back; a dead worker's problems requeued."""

    def __init__(self, problems: list[dict[str, Any]], retries: int = 2):
        self._lock = threading.Lock()
        self.todo: deque[dict[str, Any]] = deque(problems)
        self.retries = retries
        self.held: dict[str, dict[str, dict[str, Any]]] = {}  # worker -> problem id -> problem
        self.tries: dict[str, int] = {}  # problem id -> times requeued
        self.done: dict[str, str] = {}  # problem id -> the worker that finished it
        self.failed: dict[str, list[str]] = {}  # problem id -> why each try ended
        self.out: list[tuple[str, Any]] = []  # results not yet drained: (problem id, payload)
        self.logs: dict[str, deque[str]] = {}
        self.where: dict[str, str] = {}  # worker -> where it runs (a node id, a host)
        self.took: dict[str, int] = {}  # worker -> problems it has taken (0: its engine never asked for one)

    @_locked
    def take(self, worker: str) -> dict[str, Any] | None:
        """The next problem for `worker`, recorded as its own; None when there is none left."""
        if not self.todo:
            return None
        p = self.todo.popleft()
        self.held.setdefault(worker, {})[p["id"]] = p
        self.took[worker] = self.took.get(worker, 0) + 1
        return p

    @_locked
    def finish(self, worker: str, problem_id: str, payload: Any) -> bool:
        """`worker`'s result for a problem it holds; False (and dropped) if the problem is no longer its
        (requeued after the worker was given up on), so nothing is counted twice."""
        if problem_id not in self.held.get(worker, {}) or problem_id in self.done:
            return False
        del self.held[worker][problem_id]
        self.done[problem_id] = worker
        self.out.append((problem_id, payload))
        return True

    @_locked
    def drain(self) -> list[tuple[str, Any]]:
        """The results that came back since the last drain (the driver writes them)."""
        out, self.out = self.out, []
        return out

    @_locked
    def replace(self, worker: str) -> bool:
        """Whether a worker that died should be replaced: work is left and its engine had started (it took a
        problem), so the death was the run's (OOM, a kill, a lost node), not a start that will fail again."""
        return bool(self.todo) and self.took.get(worker, 0) > 0

    @_locked
    def lost(self, worker: str, why: str) -> list[str]:
        """`worker` died: the problems it held go back to the front of the queue, or fail after `retries`."""
        back = []
        for pid, p in reversed(list(self.held.pop(worker, {}).items())):
            self.failed.setdefault(pid, []).append(f"{worker}: {why}")
            self.tries[pid] = self.tries.get(pid, 0) + 1
            if self.tries[pid] <= self.retries:
                self.todo.appendleft(p)
                back.append(pid)
        return back  # requeued: not failed yet (the reasons stay for the record)

    @_locked
    def log(self, worker: str, line: str) -> None:
        self.logs.setdefault(worker, deque(maxlen=LOG_LINES)).append(line)

    @_locked
    def seen_at(self, worker: str, where: str) -> None:
        self.where[worker] = where

    @_locked
    def state(self) -> dict[str, Any]:
        """Counts and failures, for the driver's loop and its final word."""
        gave_up = {pid: why for pid, why in self.failed.items() if pid not in self.done
                   and self.tries.get(pid, 0) > self.retries}
        return {"todo": len(self.todo), "held": {w: list(h) for w, h in self.held.items() if h},
                "done": len(self.done), "gave_up": gave_up, "where": dict(self.where), "took": dict(self.took),
                "logs": {w: list(lines) for w, lines in self.logs.items()}}


class _Manager:
    """multiprocessing's manager, made on first use (the Ray path never needs it)."""

    @staticmethod
    def cls() -> type:
        from multiprocessing.managers import BaseManager

        class QueueManager(BaseManager):
            pass

        return QueueManager


def serve(queue: WorkQueue) -> tuple[tuple[str, int], bytes, Callable[[], None]]:
    """`queue` served to this machine's worker processes: (address, authkey, stop). The server runs on a
    thread of this process, so the caller keeps using `queue` itself; the key is random, per run."""
    import secrets

    manager = _Manager.cls()
    manager.register("queue", callable=lambda: queue, exposed=("take", "finish", "lost", "log", "seen_at", "state",
                                                                        "replace"))
    key = secrets.token_bytes(16)
    server = manager(address=("127.0.0.1", 0), authkey=key).get_server()
    def run() -> None:
        try:
            server.serve_forever()
        except SystemExit:  # how multiprocessing's server ends when stopped
            pass

    thread = threading.Thread(target=run, name="work-queue", daemon=True)
    thread.start()

    def stop() -> None:
        server.stop_event.set()

    return server.address, key, stop


def connect(address: tuple[str, int], key: bytes) -> Any:
    """The served queue, from a worker process (a proxy with take / finish / lost / log / seen_at / state)."""
    manager = _Manager.cls()
    manager.register("queue")
    m = manager(address=address, authkey=key)
    m.connect()
    return m.queue()
