"""Evaluated responses -> DPO preference pairs (prompt / chosen / rejected), as a polars pipeline.

The options are the ones the iteration-8 journal used: cap and balance the
pairs per problem (v2), move the start of the code block into the prompt (v1),
and a marker comment in the chosen code to check that training reaches
inference. Pairs are split into train and validation by problem, never by pair:
a problem's responses in both sets would make validation meaningless.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from .config import ConfigError, Job, setting
from .errors import AimokitError
from .prompts import CODE_OPEN
from .io import atomic_write

CODE_START = CODE_OPEN + "\n"


class DPODataError(AimokitError, ValueError):
    """Responses that cannot make preference pairs; the message names the fix."""


@dataclass(frozen=True)
class DPODataConfig(Job):
    """Evaluated responses -> preference pairs, with the journal's options."""

    what: ClassVar[str] = "dpo-data config"

    responses: list[str] = setting(default_factory=list, help="Parquet files written by `build.py evaluate`.")
    out: str = setting("runs/dpo-data", help="train.parquet, val.parquet and stats.json go here.")
    tokenizer: str = setting("", help="Model directory for token lengths; empty: the embedded default.")
    max_pairs_per_problem: int = setting(16, help="Cap per problem (the journal: ~21 pairs per problem).")
    balance: bool = setting(False, help="Every problem gets exactly max_pairs_per_problem pairs (repeats if it has fewer).")
    code_start_in_prompt: bool = setting(True, help="Journal v1: the code fence opening moves from the responses to the prompt.")
    marker: str = setting("", help="e.g. '# aimokit-marker': added as the first line of every code block of chosen.")
    max_prompt_tokens: int = setting(296, help="Pairs with a longer prompt are dropped (the journal's lengths).")
    max_total_tokens: int = setting(937, help="Pairs with a longer prompt plus response are dropped.")
    val_fraction: float = setting(0.1, help="The share of problems (never of pairs) held out for validation.")
    seed: int = setting(0, help="The cap's draw and the split.")
    prefer_shorter: float = setting(0.0, help="Above 0: also pair two correct responses of a problem, the shorter chosen, "
                                              "when the longer is at least (1 + prefer_shorter) x as long in characters "
                                              "(AIMO-2's 2nd place trained shorter outputs so, with loss_type nca_pair); 0: off.")
    solutions: str = setting("", help="Optional problems file with 'solution': chosen for problems no sample solved.")
    protocol: str = setting("fenced", help="The protocol the responses were written in (the kernel's solver.protocol): "
                                           "it writes the reference solutions the way the kernel reads answers "
                                           "(gpt-oss: 'harmony', its answer in the final channel).")

    def __post_init__(self) -> None:
        if self.max_pairs_per_problem < 1:
            raise ConfigError("max_pairs_per_problem must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if self.prefer_shorter < 0:
            raise ConfigError("prefer_shorter must be >= 0 (0: off; 0.5: the longer is at least 1.5x as long)")
        from . import registry

        try:
            registry.PROTOCOLS.get(self.protocol, "protocol")
        except registry.RegistryError as e:
            raise ConfigError(f"{e}: the kernel config's solver.protocol") from None


NEED = ("problem_id", "prompt", "response", "correct")  # of the response record


def read_responses(paths: list[str]) -> pl.LazyFrame:
    from . import responses

    return responses.scan(paths, NEED, DPODataError).select(NEED)


def _with_solutions(lf: pl.LazyFrame, path: str, protocol_name: str) -> pl.LazyFrame:
    """For problems no sample solved, the reference solution becomes a chosen response, written as the protocol
    writes answers (`ToolProtocol.written_solution`, as sft-data does), so the pair teaches the format the kernel
    reads."""
    from .evaluate import unsolved
    from .problems import read_frame
    from .protocols import get_protocol

    protocol = get_protocol(protocol_name)

    sol = read_frame(path)
    if "solution" not in sol.columns or "id" not in sol.columns:
        raise DPODataError(f"{path}: needs 'id' and 'solution' columns to supply chosen responses")
    sol = sol.select(pl.col("id").cast(pl.String).alias("problem_id"), pl.col("solution").cast(pl.String),
                     pl.col("answer").cast(pl.String) if "answer" in sol.columns else pl.lit("").alias("answer"))
    # the model reasons in <think> blocks if its recorded responses do: its references are written so too
    thinks = bool(lf.select(pl.col("response").str.contains("</think>", literal=True).any()).collect().item())
    ref = (unsolved(lf).join(sol.lazy(), on="problem_id", how="inner", maintain_order="left")
           .select("problem_id", "prompt",
                   pl.struct("prompt", "solution", "answer").map_elements(
                       lambda r: protocol.written_solution(r["prompt"], r["solution"] or "", r["answer"] or "",
                                                                 thinks=thinks),
                       return_dtype=pl.String).alias("response"),
                   pl.lit(True).alias("correct")))
    return pl.concat([lf, ref])


def _check_usable(lf: pl.LazyFrame, prefer_shorter: float = 0.0) -> None:
    per = lf.group_by("problem_id").agg(pl.col("correct").sum().alias("good"), (~pl.col("correct")).sum().alias("bad")).collect()
    pairable = (pl.col("good") > 0) & (pl.col("bad") > 0)
    if prefer_shorter > 0:
        pairable = pairable | (pl.col("good") > 1)
    usable = per.filter(pairable).height
    if usable == 0:
        all_wrong = per.filter(pl.col("good") == 0).height
        all_right = per.filter(pl.col("bad") == 0).height
        raise DPODataError(
            f"no problem has both a correct and a wrong response ({per.height} problems: {all_wrong} with none "
            f"correct, {all_right} with none wrong), so there is no pair to make. Evaluate with more samples, on "
            "problems nearer the model's level, pass reference solutions (--solutions FILE with a 'solution' column), or "
            "pair correct answers by length (prefer_shorter > 0)")


def add_marker(text: pl.Expr, marker: str) -> pl.Expr:
    return text.str.replace_all(CODE_START, CODE_START + marker + "\n", literal=True)


def make_pairs(cfg: DPODataConfig) -> pl.LazyFrame:
    lf = read_responses(cfg.responses)
    if cfg.solutions:
        lf = _with_solutions(lf, cfg.solutions, cfg.protocol)
    # Read the files once (the check below and the pairs both need them), in one order whatever the files' own:
    # evaluate writes problems as they finish, and its workers in any order. The same responses, the same pairs.
    lf = lf.collect().sort(["problem_id", "prompt", "response"], maintain_order=True).lazy()
    _check_usable(lf, cfg.prefer_shorter)
    lf = lf.unique(subset=["problem_id", "prompt", "response"], maintain_order=True)
    chosen = lf.filter(pl.col("correct")).select("problem_id", "prompt", pl.col("response").alias("chosen"))
    rejected = lf.filter(~pl.col("correct")).select("problem_id", pl.col("response").alias("rejected"))
    pairs = chosen.join(rejected, on="problem_id", how="inner", maintain_order="left_right")  # same seed, same pairs
    pairs = pairs.with_columns(pl.lit("correct_wrong").alias("kind"))
    if cfg.prefer_shorter > 0:  # a correct answer said in fewer words beats the same answer said at length
        longer = chosen.select("problem_id", pl.col("chosen").alias("rejected"))
        shorter = (chosen.join(longer, on="problem_id", how="inner", maintain_order="left_right")
                   .filter(pl.col("rejected").str.len_chars()
                           >= (1 + cfg.prefer_shorter) * pl.col("chosen").str.len_chars())
                   .with_columns(pl.lit("shorter").alias("kind")))
        pairs = pl.concat([pairs, shorter])
    if cfg.code_start_in_prompt:  # only where both responses open with the code block
        both = pl.col("chosen").str.starts_with(CODE_START) & pl.col("rejected").str.starts_with(CODE_START)
        pairs = pairs.with_columns(
            pl.when(both).then(pl.col("prompt") + CODE_START).otherwise(pl.col("prompt")).alias("prompt"),
            pl.when(both).then(pl.col("chosen").str.strip_prefix(CODE_START)).otherwise(pl.col("chosen")).alias("chosen"),
            pl.when(both).then(pl.col("rejected").str.strip_prefix(CODE_START)).otherwise(pl.col("rejected")).alias("rejected"),
        )
    if cfg.marker:
        # The chosen code gets the marker; when the code start moved into the prompt, the block now begins the response.
        moved = pl.col("prompt").str.ends_with(CODE_START)
        marked = add_marker(pl.col("chosen"), cfg.marker)
        pairs = pairs.with_columns(
            pl.when(moved).then(pl.lit(cfg.marker + "\n") + marked).otherwise(marked).alias("chosen"))
    return pairs.unique(subset=["prompt", "chosen", "rejected"], maintain_order=True)


def _lengths(df: pl.DataFrame, tokenizer_dir: str) -> pl.DataFrame:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)

    def count(s: pl.Series) -> pl.Series:
        ids = tok(s.to_list(), add_special_tokens=False)["input_ids"]
        return pl.Series([len(x) for x in ids], dtype=pl.Int64)

    return df.with_columns(
        pl.col("prompt").map_batches(count, return_dtype=pl.Int64).alias("prompt_tokens"),
        pl.col("chosen").map_batches(count, return_dtype=pl.Int64).alias("chosen_tokens"),
        pl.col("rejected").map_batches(count, return_dtype=pl.Int64).alias("rejected_tokens"),
    ).with_columns((pl.col("prompt_tokens") + pl.max_horizontal("chosen_tokens", "rejected_tokens")).alias("total_tokens"))


def _cap(df: pl.DataFrame, cfg: DPODataConfig) -> pl.DataFrame:
    """At most max_pairs_per_problem pairs per problem, drawn at random; with balance, exactly that many."""
    df = df.sample(fraction=1.0, shuffle=True, seed=cfg.seed).with_columns(
        pl.int_range(pl.len()).over("problem_id").alias("_rank"))
    capped = df.filter(pl.col("_rank") < cfg.max_pairs_per_problem)
    if cfg.balance:
        n = capped.group_by("problem_id", maintain_order=True).len()
        short = n.filter(pl.col("len") < cfg.max_pairs_per_problem)
        extra = []
        for pid, have in short.iter_rows():
            rows = capped.filter(pl.col("problem_id") == pid)
            extra.append(rows.sample(n=cfg.max_pairs_per_problem - have, with_replacement=True, seed=cfg.seed))
        capped = pl.concat([capped, *extra]) if extra else capped
    return capped.drop("_rank")


def split_by_problem(df: pl.DataFrame, val_fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    problems = df.select("problem_id").unique().sort("problem_id").sample(fraction=1.0, shuffle=True, seed=seed)
    n_val = round(problems.height * val_fraction)
    if val_fraction > 0 and problems.height > 1:
        n_val = max(1, min(n_val, problems.height - 1))
    val_ids = problems.head(n_val)["problem_id"]
    return df.filter(~pl.col("problem_id").is_in(val_ids)), df.filter(pl.col("problem_id").is_in(val_ids))


def _percentiles(s: pl.Series) -> dict[str, int]:
    if s.len() == 0:
        return {}
    return {f"p{q}": int(s.quantile(q / 100, "nearest")) for q in (50, 90, 99)} | {"max": int(s.max())}


def build_dpo_data(cfg: DPODataConfig) -> dict[str, Any]:
    """Write train.parquet, val.parquet and stats.json under cfg.out; return the stats."""
    from .models import resolve_model

    cfg = dataclasses.replace(cfg, tokenizer=resolve_model(cfg.tokenizer))  # empty: the embedded default
    pairs = make_pairs(cfg).collect()
    candidates = pairs.height
    pairs = _lengths(pairs, cfg.tokenizer)
    too_long_prompt = pairs.filter(pl.col("prompt_tokens") > cfg.max_prompt_tokens).height
    pairs = pairs.filter((pl.col("prompt_tokens") <= cfg.max_prompt_tokens) & (pl.col("total_tokens") <= cfg.max_total_tokens))
    too_long_total = candidates - too_long_prompt - pairs.height
    if pairs.height == 0:
        raise DPODataError(f"all {candidates} pairs are longer than max_prompt_tokens={cfg.max_prompt_tokens} / "
                           f"max_total_tokens={cfg.max_total_tokens}; raise the limits or shorten the responses")
    pairs = _cap(pairs, cfg)
    train, val = split_by_problem(pairs, cfg.val_fraction, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("train", train), ("val", val)):
        df.write_parquet(out / f"{name}.parquet")
    stats = {
        "problems": {"train": train["problem_id"].n_unique(), "val": val["problem_id"].n_unique()},
        "pairs": {"train": train.height, "val": val.height, "candidates": candidates,
                  "shorter_correct": pairs.filter(pl.col("kind") == "shorter").height,
                  "dropped_prompt_too_long": too_long_prompt, "dropped_total_too_long": too_long_total},
        "pairs_per_problem": _percentiles(pairs.group_by("problem_id").len()["len"]),
        "tokens": {col: _percentiles(pairs[col]) for col in ("prompt_tokens", "chosen_tokens", "rejected_tokens", "total_tokens")},
        "options": {"max_pairs_per_problem": cfg.max_pairs_per_problem, "balance": cfg.balance,
                    "code_start_in_prompt": cfg.code_start_in_prompt, "marker": cfg.marker,
                    "max_prompt_tokens": cfg.max_prompt_tokens, "max_total_tokens": cfg.max_total_tokens,
                    "val_fraction": cfg.val_fraction, "seed": cfg.seed, "prefer_shorter": cfg.prefer_shorter},
    }
    atomic_write(out / "stats.json", json.dumps(stats, indent=2))
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    p, t = stats["pairs"], stats["tokens"]
    lines = [f"problems: {stats['problems']['train']} train, {stats['problems']['val']} val",
             f"pairs: {p['train']} train, {p['val']} val (of {p['candidates']} candidates; dropped "
             f"{p['dropped_prompt_too_long']} for prompt length, {p['dropped_total_too_long']} for total length; "
             f"{p.get('shorter_correct', 0)} prefer the shorter of two correct answers)",
             f"pairs per problem: {stats['pairs_per_problem']}"]
    lines += [f"{k}: {v}" for k, v in t.items()]
    return "\n".join(lines)
