"""Engines for the Ray evaluation tests, built inside each actor (evaluate_ray.ENGINE_FACTORY)."""

from __future__ import annotations

import os
import time

from fakes import ScriptedEngine

from aimokit.engine import GenResult


def _respond(prompt, req):
    return GenResult("I find it. \\boxed{42}", 5, "eos")


def scripted(cfg):
    """Every sample answers 42, a little slowly (so both actors take problems)."""
    return ScriptedEngine(_respond, step_s=float(os.environ.get("AIMOKIT_TEST_STEP_S", "0.05")))


def dies_mid_problem(cfg):
    """The first actor to start its second problem dies there (os._exit, as an OOM kill would end it): the
    trigger is a file only one process can create."""
    seen: set[str] = set()
    marker = os.environ["AIMOKIT_TEST_DIE_FILE"]

    def respond(prompt, req):
        seen.add(prompt)
        if len(seen) == 2:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(17)
        time.sleep(0.02)
        return _respond(prompt, req)

    return ScriptedEngine(respond)
