"""GenSelect: when the vote is not decided, the model reads the candidates and picks one (NemoSkills, AIMO-2).

Why: counting answers throws away what the samples say. When a problem's samples are all in and the leading
answer holds less than `solver.genselect_share` of the vote, one more request goes to the engine, inside the
problem's own deadline: the problem, then each of the top `genselect_candidates` answers with the end of the
reasoning of a sample that gave it (its last `genselect_chars` characters of model-written text), asking
which final answer is right, boxed. The request is the protocol's own first turn (`protocol.prompt`), so
each model reads it in its format (harmony, ChatML, DeepSeek...), and its answer is read as every answer
is (the protocol's answer region). A pick that is not one of the candidates, or no pick, leaves the vote's
answer: GenSelect can only choose among what the samples found.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from .answers import extract_answer
from .candidates import Vote
from .engine import GenRequest
from .protocols.base import joined
from .votes import scores

log = logging.getLogger(__name__)

INSTRUCTION = ("Several solutions to the problem below were written independently, and their final answers "
               "disagree. Read them, decide which final answer is correct (check the reasoning, not the number "
               "of solutions that agree), and give that final answer in \\boxed{}.")


@dataclass(frozen=True)
class Candidate:
    answer: int
    votes: int
    text: str  # the end of one sample's model-written reasoning


@dataclass(frozen=True)
class Outcome:
    """What GenSelect did for one problem: `answer` None keeps the vote's; `why` says what happened."""

    answer: int | None
    why: str
    tokens: int = 0


def needed(votes: list[Vote], cfg: Any) -> str:
    """'' when GenSelect should run on these votes, else why not."""
    answers = {v.answer for v in votes}
    if len(answers) < 2:
        return "one answer only"
    share = max(sum(v.answer == a for v in votes) for a in answers) / len(votes)
    if share >= cfg.genselect_share:
        return f"the leader holds {share:.0%} of the votes (genselect_share {cfg.genselect_share:.0%})"
    return ""


def candidates(votes: list[Vote], texts: dict[int, str], cfg: Any) -> list[Candidate]:
    """The top answers by the policy's score, each with one sample's reasoning (`texts`: answer -> text)."""
    ranked = sorted(scores(votes, cfg).items(), key=lambda kv: -kv[1])[:cfg.genselect_candidates]
    return [Candidate(a, sum(v.answer == a for v in votes), texts.get(a, "")[-cfg.genselect_chars:])
            for a, _ in ranked]


def message(problem: str, cands: list[Candidate]) -> str:
    """The selection task as the problem text of a first turn (each protocol wraps it in its own format)."""
    parts = [INSTRUCTION, "", "Problem:", problem.strip(), ""]
    for i, c in enumerate(cands, 1):
        parts += [f"Solution {i} (final answer {c.answer}, given by {c.votes} of the solutions), its end:",
                  "..." + c.text.strip() if c.text else "(no reasoning kept)", ""]
    parts.append("Which final answer is correct? Give it in \\boxed{}.")
    return "\n".join(parts)


def sample_text(protocol: Any, text: str, prompt: str) -> str:
    """What the model wrote in a sample, its format's markup left out (a reasoning to quote)."""
    try:
        return joined(protocol.segments(text, prompt))
    except Exception:  # an unreadable sample is quoted as it is
        return text


def request(solver: Any, problem: Any, prompt: str, votes: list[Vote], samples: list[Any], remaining: float | None,
            seed: int) -> Outcome | tuple[GenRequest, str, list[Candidate]]:
    """The selection request for one problem whose samples are all in (with its prompt and candidates), or
    the outcome that says why there is none."""
    cfg = solver.cfg
    why = needed(votes, cfg)
    if not why and remaining is not None and remaining < cfg.genselect_min_s:
        why = f"{remaining:.0f} s left, under genselect_min_s: the vote stands"
        log.info("genselect skipped for %s: %s", problem.id, why)
    if why:
        return Outcome(None, why)
    texts: dict[int, tuple[int, str]] = {}
    for smp in samples:  # the first sample (in finish order) that gave each answer
        if smp.answer is not None and (smp.answer not in texts or smp.finished_at < texts[smp.answer][0]):
            texts[smp.answer] = (smp.finished_at, sample_text(solver.protocol, smp.text, prompt))
    cands = candidates(votes, {a: t for a, (_, t) in texts.items()}, cfg)
    select_prompt = solver.protocol.prompt(solver.engine, message(problem.problem, cands), cfg, solver.comp)
    req = GenRequest(prompt=select_prompt, max_tokens=cfg.genselect_tokens, seed=seed, temperature=cfg.temperature,
                     top_p=cfg.top_p, min_p=cfg.min_p, skip_special_tokens=not solver.protocol.keeps_special_tokens,
                     stop=solver.protocol.stop(cfg))
    return req, select_prompt, cands


def read_pick(protocol: Any, result: Any, prompt: str, cands: list[Candidate], comp: Any) -> Outcome:
    """The candidate the selection reply boxes, or no pick (the vote's answer stands), with why."""
    got = extract_answer(protocol.answer_text(result.text, prompt), [], comp).answer
    tokens = result.n_tokens
    if got is None:
        cut = " (cut at the deadline)" if result.finish == "aborted" else ""
        return Outcome(None, f"the reply boxed no answer{cut}: the vote stands", tokens)
    if got not in {c.answer for c in cands}:
        return Outcome(None, f"the reply picked {got}, none of the candidates: the vote stands", tokens)
    return Outcome(got, f"picked {got} of {', '.join(str(c.answer) for c in cands)}", tokens)


def send_ready(run: Any, seed_of: Callable[[int], int]) -> None:
    """A rollout's step (`Rollout.poll`): each problem in flight (`run.open`) whose samples are all done and out of
    the engine, and whose vote is not decided, sends one selection request (key (problem, -1)) inside the
    deadline; its reply comes to `receive`. When none is needed, the problem's outcome says why."""
    cfg = run.s.cfg
    if not cfg.genselect:
        return
    for pi in run.open:
        if (run.left[pi] or pi in run.picks or pi in run.selecting or run.closed[pi]
                or any(k in run.in_engine for k in run.keys[pi])):
            continue
        remaining = None if run.deadline is None else run.deadline - time.monotonic()
        got = request(run.s, run.problems[pi], run.prompts[pi], run.votes[pi],
                      [run.samples[k] for k in run.keys[pi]], remaining, seed_of(pi))
        if isinstance(got, Outcome):
            run.picks[pi] = got
            continue
        run.selecting[pi] = (got[1], got[2])
        run.in_engine.add((pi, -1))
        run.todo.append(((pi, -1), got[0]))


def receive(run: Any, key: tuple[int, int], result: Any) -> None:
    """The selection reply for problem key[0]: its pick (or why there is none) goes to `run.picks`."""
    pi = key[0]
    run.in_engine.discard(key)
    prompt, cands = run.selecting.pop(pi)
    run.picks[pi] = read_pick(run.s.protocol, result, prompt, cands, run.s.comp)
    log.info("genselect %s: %s", run.problems[pi].id, run.picks[pi].why)
