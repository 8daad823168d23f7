"""A reward a tiny random model can learn in a few GRPO steps: the share of even token ids in what it writes
(half the vocabulary, so every group of completions differs and the advantage has a direction)."""


def even_ids(prompts, completions, completion_ids, **_):
    return [sum(1 for t in ids if t % 2 == 0) / max(1, len(ids)) for ids in completion_ids]


def broken(prompts, completions, **_):
    raise ValueError("this reward has a bug")
