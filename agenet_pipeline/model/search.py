"""Hyperparameter search: the trials of a grid or a seeded random search over recipe settings."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence


def grid(space: Mapping[str, Sequence]) -> list[dict]:
    """Every combination of the listed values, in a stable order."""
    names = sorted(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))]


def random_trials(space: Mapping[str, Sequence], count: int, seed: int = 0) -> list[dict]:
    """`count` distinct combinations drawn with a seed (all of them when the grid is smaller)."""
    combinations = grid(space)
    return random.Random(seed).sample(combinations, min(count, len(combinations)))


def trials(space: Mapping[str, Sequence], method: str, count: int, seed: int = 0) -> list[dict]:
    empty = [name for name, values in space.items() if not values]
    if empty:
        raise ValueError(f"the search space gives no values for {', '.join(empty)}")
    if method == "grid":
        return grid(space)
    if method == "random":
        return random_trials(space, count, seed)
    raise ValueError(f"search method must be 'grid' or 'random', not {method!r}")
