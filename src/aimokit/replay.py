"""Replay recorded samples under every vote and early-stop policy: choose a policy without a GPU.

`evaluate` records each sample's answer, tokens, the order samples finished in
and the model's token entropy. Replay feeds each problem's samples, in that
order, to the same `votes.decided` / `votes.winner` the solver uses, under each
vote policy and each early-stop rule set, and reports accuracy (with Wilson
intervals) against the tokens each would have spent: the tokens of the samples
heard before the vote was decided. (In a live run the samples still generating
at that moment have spent some tokens too; replay does not know how many, so its
figure is a lower bound.) Policies a file cannot support (entropy votes without
entropy statistics) are skipped, and the report says why.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import polars as pl

from .config import CompetitionConfig, SamplingConfig
from .errors import AimokitError
from .metrics import wilson
from .registry import POLICIES
from .votes import Vote, decided, winner

REQUIRED = ("problem_id", "sample", "answer", "gold", "tokens")
EARLY_STOPS: dict[str, dict[str, Any] | None] = {
    "none": None,  # every sample heard
    "lead": {"early_stop": [], "early_stop_agree": 0},  # only when the leader cannot be caught
    "rules": {},  # the config's own rules (default [[4, 4], [5, 7], [6, 9]]) and the lead
    "agree4": {"early_stop": [], "early_stop_agree": 4},  # AIMO-3's winners: 4 agree, or the lead
}


class ReplayError(AimokitError, ValueError):
    """A responses file replay cannot read; the message names what is missing."""


def read(paths: list[str]) -> pl.DataFrame:
    from . import responses

    return responses.scan(paths, REQUIRED, ReplayError).collect()


def reread(df: pl.DataFrame, solver: SamplingConfig, comp: CompetitionConfig) -> pl.DataFrame:
    """The responses with each sample's answer read again from its text under `solver`'s protocol and answer
    region (`solver.answer_region`): replaying a file under both regions compares the two reading rules
    (say, harmony's final channel against the winners' any-channel rule) on the same samples."""
    from .answers import extract_answer
    from .protocols import get_protocol

    if "response" not in df.columns or df["response"].null_count() == df.height:
        raise ReplayError("re-reading answers needs the response texts (a responses.parquet with `response`)")
    protocol = get_protocol(solver.protocol, solver)
    prompts = df["prompt"].to_list() if "prompt" in df.columns else [""] * df.height
    read_ = [extract_answer(protocol.answer_text(text or "", prompt or ""), [], comp)
             for text, prompt in zip(df["response"].to_list(), prompts)]
    return df.with_columns(pl.Series("answer", [x.answer for x in read_], dtype=pl.Int64),
                           pl.Series("boxed", [x.boxed for x in read_], dtype=pl.Boolean))


def _votes(df: pl.DataFrame) -> dict[str, tuple[int | None, list[tuple[Vote | None, int]]]]:
    """Per problem: its gold answer and its samples as (vote or None, tokens), in the order they finished."""
    order = "finished_at" if "finished_at" in df.columns else "sample"
    out = {}
    for (pid,), g in df.group_by("problem_id", maintain_order=True):
        if order == "finished_at":  # samples without an answer have no finish order: after the others
            g = g.with_columns(pl.col("finished_at").fill_null(0).replace(0, None))
            g = g.sort([pl.col("finished_at").is_null(), "finished_at", "sample"])
        else:
            g = g.sort("sample")
        rows = []
        for r in g.iter_rows(named=True):
            vote = None if r["answer"] is None else Vote(
                int(r["answer"]), bool(r.get("boxed", True)), int(r.get("code_runs") or 0),
                int(r.get("code_errors") or 0), r.get("entropy_mean"))
            rows.append((vote, int(r["tokens"] or 0)))
        gold = g["gold"][0]
        out[str(pid)] = (None if gold is None else int(gold), rows)
    return out


def replay_one(samples: list[tuple[Vote | None, int]], cfg: SamplingConfig, stop_early: bool = True,
               fallback: int = 0) -> tuple[int, int, int]:
    """(answer, tokens spent, samples heard) for one problem under one policy."""
    votes: list[Vote] = []
    spent = 0
    for i, (vote, tokens) in enumerate(samples):
        spent += tokens
        if vote is None:
            continue
        votes.append(vote)
        pending = len(samples) - i - 1
        if pending and stop_early and decided(votes, pending, cfg):
            return winner(votes, cfg, fallback), spent, i + 1
    return winner(votes, cfg, fallback), spent, len(samples)


def replay(df: pl.DataFrame, base: SamplingConfig | None = None) -> dict[str, Any]:
    """Every policy's accuracy and tokens on the recorded samples; skipped policies with the reason."""
    base = base or SamplingConfig()
    problems = _votes(df)
    has_entropy = "entropy_mean" in df.columns and df["entropy_mean"].drop_nulls().len() > 0
    total_tokens = sum(t for _, rows in problems.values() for _, t in rows)
    rows, skipped = [], []
    for vote in POLICIES.names():
        if POLICIES.get(vote).needs_entropy and not has_entropy:
            skipped.append(f"{vote}: the file has no entropy statistics (evaluate with solver.top_logprobs >= 1)")
            continue
        for name, stop in EARLY_STOPS.items():
            cfg = dataclasses.replace(base, vote=vote, top_logprobs=max(base.top_logprobs, 1), **(stop or {}))
            correct = spent = heard = 0
            graded = 0
            for gold, samples in problems.values():
                answer, tokens, n = replay_one(samples, cfg, stop_early=stop is not None)
                spent += tokens
                heard += n
                if gold is not None:
                    graded += 1
                    correct += int(answer == gold)
            lo, hi = wilson(correct, graded)
            rows.append({"vote": vote, "early_stop": name, "correct": correct, "problems": graded,
                         "accuracy": correct / graded if graded else 0.0, "ci": [lo, hi], "tokens": spent,
                         "token_share": spent / total_tokens if total_tokens else 0.0,
                         "samples_heard": heard})
    return {"problems": len(problems), "responses": df.height, "tokens_all": total_tokens,
            "order": "finished_at" if "finished_at" in df.columns else "sample", "policies": rows, "skipped": skipped}


def render(result: dict[str, Any]) -> str:
    lines = [f"# Replay: {result['problems']} problems, {result['responses']} responses, "
             f"{result['tokens_all']} tokens (samples in {result['order']} order)", "",
             "| vote | early stop | correct | accuracy | 95% CI | tokens | share of all | samples heard |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["policies"]:
        lines.append(f"| {r['vote']} | {r['early_stop']} | {r['correct']}/{r['problems']} | {100 * r['accuracy']:.1f}% "
                     f"| {100 * r['ci'][0]:.1f}–{100 * r['ci'][1]:.1f}% | {r['tokens']} | {100 * r['token_share']:.1f}% "
                     f"| {r['samples_heard']} |")
    lines += ["", "Tokens are those of the samples heard before the vote was decided: a lower bound of a live run's "
              "(samples still generating then had spent some too)."]
    lines += [f"Skipped: {s}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"
