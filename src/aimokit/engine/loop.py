"""The one poll / cancel / deadline loop every backend runs, and the plain batch `generate`.

A backend supplies three moves: `submit` a request, `abort` some (returning
what each had written), and `step` (returning the requests that finished).
The loop owns everything else, so every backend keeps the same contract:
- new requests and cancellations are taken from the driver between steps;
- each submitted request is reported to `driver.finished` exactly once:
  completed, or cut short as "aborted" with its partial text and tokens;
- a step is not started when it is expected to end past the deadline (the
  median of the last steps, so one warm-up outlier does not starve the rest),
  unless the backend's step stops at the deadline by itself;
- at the deadline every live request is cut and reported;
- if a step raises, the live requests are aborted so the engine is clean for
  the next call, and the exception goes to the caller.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Callable, Hashable, Iterable

from .types import Driver, GenRequest, GenResult

log = logging.getLogger(__name__)

STEPS_REMEMBERED = 8


class SteppedEngine:
    """Base of every backend: `run` is the shared loop; subclasses implement the three moves."""

    name = "stepped"
    # True where `step` itself stops at the deadline (a batch-at-once backend): no room is kept for one.
    step_honours_deadline = False

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.recent_steps: list[float] = []  # the last steps' durations (seconds), kept across calls

    # -- the three moves ------------------------------------------------------
    def submit(self, key: Hashable, request: GenRequest) -> None:
        raise NotImplementedError

    def abort(self, keys: list[Hashable]) -> dict[Hashable, GenResult]:
        """Stop these requests; what each wrote so far (finish "aborted")."""
        raise NotImplementedError

    def step(self, deadline: float | None) -> list[tuple[Hashable, GenResult]]:
        """Advance every live request a little; the ones that finished."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int] | None:
        """Token ids of `text`, for backends that take `GenRequest.prompt_ids` (default: None, text only)."""
        return None

    def reset(self) -> None:
        """After a run that raised and whose requests were aborted: settle the engine (default: nothing)."""

    def processes(self) -> set[int]:
        """The engine's own processes (vLLM's core): the kernel kills them on a hang. None: in-process."""
        return set()

    # -- the loop ---------------------------------------------------------------
    def run(self, driver: Driver, deadline: float | None = None) -> None:
        live: set[Hashable] = set()

        def cut(keys: Iterable[Hashable]) -> None:
            keys = [k for k in keys if k in live]
            if not keys:
                return
            partial = self.abort(keys)
            live.difference_update(keys)
            for k in keys:  # the tokens were generated: the driver counts them
                driver.finished(k, partial.get(k) or GenResult())

        try:
            while True:
                new, dropped = driver.poll()
                for key, req in new:
                    self.submit(key, req)
                    live.add(key)
                cut(dropped)
                if deadline is not None and self.clock() + self._step_estimate() >= deadline:
                    break
                if live:
                    t = self.clock()
                    done = self.step(deadline)
                    self.recent_steps.append(self.clock() - t)
                    del self.recent_steps[:-STEPS_REMEMBERED]
                    for key, res in done:
                        if key in live:
                            live.discard(key)
                            cut(driver.finished(key, res))
                elif driver.busy():
                    driver.wait(0.02)
                else:
                    break
            cut(list(live))  # the deadline: hand over what the cut requests wrote
        finally:
            if live:  # an exception: leave the engine clean for the next call
                try:
                    self.abort(list(live))
                    self.reset()
                except Exception:  # the engine itself is broken; the caller handles that
                    log.exception("could not abort requests")

    def _step_estimate(self) -> float:
        if self.step_honours_deadline or not self.recent_steps:
            return 0.0
        return statistics.median(self.recent_steps)


class QueuedEngine(SteppedEngine):
    """A backend that generates whole requests a batch at a time (transformers, test fakes).

    Requests wait in a queue; a step takes up to `batch_size` compatible ones (same
    stop strings, sampling settings and answer check) and `generate_batch` runs them to the end
    or the deadline. A request not yet started has written nothing when cut.
    """

    batch_size = 8

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock)
        self.queue: list[tuple[Hashable, GenRequest]] = []

    def generate_batch(self, requests: list[GenRequest], deadline: float | None) -> list[GenResult]:
        raise NotImplementedError

    def submit(self, key, request):
        self.queue.append((key, request))

    def abort(self, keys):
        gone = set(keys)
        self.queue = [(k, r) for k, r in self.queue if k not in gone]
        return {k: GenResult() for k in keys}

    def step(self, deadline):
        head = self.queue[0][1]
        same = lambda r: (r.stop, r.temperature, r.top_p, r.min_p, r.top_logprobs, r.skip_special_tokens,  # noqa: E731
                          r.done_when) == (head.stop, head.temperature, head.top_p, head.min_p, head.top_logprobs,
                                           head.skip_special_tokens, head.done_when)
        batch = [(k, r) for k, r in self.queue if same(r)][: self.batch_size]
        taken = {k for k, _ in batch}
        self.queue = [(k, r) for k, r in self.queue if k not in taken]
        results = self.generate_batch([r for _, r in batch], deadline)
        return [(k, res) for (k, _), res in zip(batch, results)]


class ListDriver:
    """Feeds a fixed list of requests; the plain batch `generate`."""

    def __init__(self, requests: list[GenRequest]):
        self.todo = list(enumerate(requests))
        self.results = [GenResult() for _ in requests]

    def poll(self):
        todo, self.todo = self.todo, []
        return todo, []

    def finished(self, key, result):
        self.results[key] = result
        return ()

    def busy(self) -> bool:
        return False

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)


def generate(engine, requests: list[GenRequest], deadline: float | None = None) -> list[GenResult]:
    """Run a batch of requests to completion (or the deadline); results in order."""
    driver = ListDriver(requests)
    engine.run(driver, deadline)
    return driver.results
