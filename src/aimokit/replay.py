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
from .selection import replay_one
from .votes import Vote

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
    """The kit's responses.parquet files and recorded-samples JSONL files (aimokit.recorded) alike."""
    from . import recorded

    return recorded.read(paths, REQUIRED, ReplayError)


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


def problems_of(df: pl.DataFrame) -> dict[str, tuple[int | None, list[tuple[Vote | None, int]]]]:
    """Per problem: its gold answer and its samples as (vote or None, tokens), in the order they finished."""
    order = order_of(df)
    out = {}
    for (pid,), g in df.group_by("problem_id", maintain_order=True):
        if order == "finished_at":  # samples without an answer have no finish order: after the others
            g = g.with_columns(pl.col("finished_at").fill_null(0).replace(0, None))
            g = g.sort([pl.col("finished_at").is_null(), "finished_at", "sample"])
        else:
            g = g.sort("sample")
        rows = [(None if r["answer"] is None else vote_of(r), int(r["tokens"] or 0)) for r in g.iter_rows(named=True)]
        gold = g["gold"][0]
        out[str(pid)] = (None if gold is None else int(gold), rows)
    return out


def vote_of(r: dict[str, Any]) -> Vote:
    """A recorded sample's vote, every feature the record holds (None where it holds none)."""
    spans = r.get("tool_spans")
    return Vote(int(r["answer"]), r.get("boxed"), r.get("code_runs"), r.get("code_errors"), r.get("entropy_mean"),
                0.5 if r.get("aborted") else 1.0, tokens=r.get("tokens"),
                calls=None if spans is None else len(spans), entropy_median=r.get("entropy_median"),
                entropy_tail=r.get("entropy_tail"))


def skip_reason(vote: str, base: SamplingConfig, has_entropy: bool) -> str:
    """Why the policy `vote` cannot be replayed on these samples, or ''."""
    pol = POLICIES.get(vote)
    if pol.needs_entropy and not has_entropy:
        return "the file has no entropy statistics (evaluate with solver.top_logprobs >= 1)"
    if pol.needs_selector and not base.selector:
        return "no selector given (--set solver.selector=FILE, written by `build.py select fit`)"
    return ""


def policy_config(base: SamplingConfig, vote: str, stop: dict[str, Any] | None = None) -> SamplingConfig:
    """`base` voting by `vote` (entropy votes get the logprobs setting they require)."""
    return dataclasses.replace(base, vote=vote, top_logprobs=max(base.top_logprobs, 1), **(stop or {}))


def has_entropy(df: pl.DataFrame) -> bool:
    return "entropy_mean" in df.columns and df["entropy_mean"].drop_nulls().len() > 0


def replay(df: pl.DataFrame, base: SamplingConfig | None = None, compare: list[tuple[str, str]] | None = None,
           two_run: list[int] | None = None, draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every policy's accuracy and tokens on the recorded samples (skipped policies with the reason); the
    selection loss against pass@k; paired comparisons (default: the config's policy against `count`); and,
    given samples per run, AIMO-3's two-run score."""
    from . import selection, two_runs

    base = base or SamplingConfig()
    problems = problems_of(df)
    entropy = has_entropy(df)
    total_tokens = sum(t for _, rows in problems.values() for _, t in rows)
    rows, skipped = [], []
    runnable = {}
    for vote in POLICIES.names():
        why = skip_reason(vote, base, entropy)
        if why:
            skipped.append(f"{vote}: {why}")
            continue
        runnable[vote] = policy_config(base, vote)
        for name, stop in EARLY_STOPS.items():
            cfg = policy_config(base, vote, stop)
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
    focus = base.vote if base.vote in runnable else "count"
    loss = selection.loss(problems, runnable, focus)
    pairs = compare if compare is not None else ([(focus, "count")] if focus != "count" else [])
    comparisons = []
    for a, b in pairs:
        missing = [p for p in (a, b) if p not in runnable]
        if missing:
            raise ReplayError(f"--compare {a} {b}: {', '.join(missing)} cannot run on these samples "
                              f"(runnable: {', '.join(runnable)}; skipped: {'; '.join(skipped) or 'none'})")
        right = [[r[p]["correct"] for r in loss["per_problem"]] for p in (a, b)]
        comparisons.append({"a": a, "b": b, **selection.paired(right[0], right[1], draws, seed)})
    result = {"problems": len(problems), "responses": df.height, "tokens_all": total_tokens,
              "order": order_of(df), "policies": rows, "skipped": skipped, "selection": loss,
              "comparisons": comparisons}
    if two_run:
        result["two_run"] = two_runs.simulate(problems, runnable, two_run, draws, seed)
    return result


def order_of(df: pl.DataFrame) -> str:
    """The order samples are replayed in: as they finished where the file records it, else by index."""
    return "finished_at" if "finished_at" in df.columns and df["finished_at"].fill_null(0).max() else "sample"


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
    if "selection" in result:
        from . import selection

        lines += ["", *selection.render_loss(result["selection"], [(c["a"], c["b"], c) for c in result["comparisons"]])]
    if "two_run" in result:
        from . import two_runs

        lines += ["", *two_runs.render(result["two_run"])]
    if "budget" in result:
        from . import budget_replay

        lines += ["", *budget_replay.render(result["budget"])]
    return "\n".join(lines) + "\n"
