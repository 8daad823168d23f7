"""Where Kaggle mounts a kernel's inputs, under every layout it has used: an input is named by its source.

Why: Kaggle's mounts moved. Notebooks of 2026 read competition data at `/kaggle/input/competitions/<slug>/`,
datasets at `/kaggle/input/datasets/<owner>/<slug>/`, models at
`/kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>/` and a notebook's output at
`/kaggle/input/notebooks/<owner>/<slug>/`; older ones (and some current ones) read the flat
`/kaggle/input/<slug>/`, and no Kaggle page dates the change (../shared/docs/competitions.md). So a shipped
config names an input by its source, in the shape of today's layout:

    kaggle:competitions/<slug>[/path]            kaggle:datasets/<owner>/<slug>[/path]
    kaggle:models/<owner>/<model>/<framework>/<variation>/<version>[/path]   kaggle:notebooks/<owner>/<slug>[/path]

and the kernel resolves it where it runs: today's layout, then the flat one, then a bounded search for a
folder that ends as the source does and holds the path. `build` writes the shipped configs this way (a
`$AIMOKIT_INPUT/<mount>/...` path becomes the source attached at that mount).

Standard library only: the notebook's first cell loads this file by path, before anything is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "kaggle:"
KINDS = {"competitions": 1, "datasets": 2, "models": 5, "notebooks": 2}  # the source's id, in path parts
SEARCH_DEPTH = 7  # /kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>: 6, and one spare
SEARCH_ENTRIES = 20_000  # folders looked at, at most: the search is bounded whatever the tree holds


try:
    from .errors import AimokitError as _Base
except ImportError:  # loaded by path in the notebook's first cell, where the kit is not importable yet
    class _Base(Exception):  # type: ignore[no-redef]
        pass


class MountError(_Base, LookupError):
    """An input no layout and no search found; the message lists what the input root holds."""


def parse(value: str) -> tuple[str, list[str], str] | None:
    """(kind, the source's id parts, the path inside it) of a `kaggle:` value, or None for any other value."""
    if not value.startswith(PREFIX):
        return None
    parts = [p for p in value[len(PREFIX):].split("/") if p]
    if not parts or parts[0] not in KINDS or len(parts) < 1 + KINDS[parts[0]]:
        raise ValueError(f"{value!r}: name an input as {PREFIX}competitions/<slug>, {PREFIX}datasets/<owner>/<slug>, "
                         f"{PREFIX}models/<owner>/<model>/<framework>/<variation>/<version> or "
                         f"{PREFIX}notebooks/<owner>/<slug>, then the path inside it")
    n = KINDS[parts[0]]
    return parts[0], parts[1:1 + n], "/".join(parts[1 + n:])


def source_of(kind: str, ref: list[str]) -> str:
    """The source as the ship config names it: a competition slug, `owner/slug`, a model's five parts."""
    return "/".join(ref)


def flat_tail(kind: str, ref: list[str]) -> list[str]:
    """The path parts the flat layout mounts the source at (the owner left out)."""
    return ref if kind == "competitions" else ref[1:]


def candidates(kind: str, ref: list[str], rest: str, root: Path) -> list[tuple[Path, str]]:
    """Where each layout puts the input: today's tree first, then the flat one."""
    inside = [rest] if rest else []
    return [(root.joinpath(kind, *ref, *inside), f"the {kind}/ layout"),
            (root.joinpath(*flat_tail(kind, ref), *inside), "the flat layout")]


def resolve(value: str, root: str | Path) -> tuple[str, str]:
    """(the path, how it was found) of a `kaggle:` input under `root`; MountError when nothing holds it."""
    kind, ref, rest = parse(value)  # type: ignore[misc]
    root = Path(root)
    tried = []
    for path, how in candidates(kind, ref, rest, root):
        if path.exists():
            return str(path), how
        tried.append(str(path))
    tail = flat_tail(kind, ref)
    hit = search(root, tail, rest)
    if hit is not None:
        return str(hit), f"a search of {root} (a layout the kit does not know)"
    raise MountError(f"input {value} ({kind[:-1]} {source_of(kind, ref)}) is not under {root}: tried "
                     f"{', '.join(tried)} and a search {SEARCH_DEPTH} levels deep. Attach that source to the "
                     f"kernel. {root} holds:\n{listing(root)}")


def search(root: Path, tail: list[str], rest: str) -> Path | None:
    """A folder under `root` whose path ends in `tail` and holds `rest`, breadth first, bounded."""
    frontier, seen = [root], 0
    for _ in range(SEARCH_DEPTH):
        nxt = []
        for d in frontier:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                seen += 1
                if seen > SEARCH_ENTRIES:
                    return None
                if not e.is_dir(follow_symlinks=False):
                    continue
                p = Path(e.path)
                if list(p.parts[-len(tail):]) == tail and (p / rest).exists():
                    return p / rest if rest else p
                nxt.append(p)
        frontier = nxt
    return None


def listing(root: Path, depth: int = 3, limit: int = 200) -> str:
    """What `root` holds, folders to `depth` levels with their file counts: for an error a person can act on."""
    lines: list[str] = []
    for d, dirs, files in os.walk(root):
        level = Path(d).relative_to(root).parts
        if len(level) >= depth:
            dirs[:] = []
        dirs.sort()
        lines.append("  " * len(level) + (Path(d).name or str(root)) + f"/  ({len(files)} files)")
        if len(lines) >= limit:
            lines.append("  ...")
            break
    return "\n".join(lines) if lines else f"  ({root} does not exist or is empty)"
