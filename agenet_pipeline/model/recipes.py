"""Recipes: a network and the way to train it, named. `seed` is the paper's; `recommended` is ours."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from agenet_pipeline.model.architecture import RECOMMENDED, SEED, SOFT_BINS, ModelConfig
from agenet_pipeline.model.training import TrainingConfig


@dataclass(frozen=True)
class Recipe:
    network: ModelConfig
    training: TrainingConfig


RECIPES = {
    "seed": Recipe(SEED, TrainingConfig()),
    # At 1e-3 the validation loss is noisy: the learning rate is cut after 3 epochs without improvement, so that
    # early stopping does not end training at a lucky epoch.
    "soft_bins": Recipe(
        SOFT_BINS, TrainingConfig(label_sigma=3.0, learning_rate=1e-3, patience=8, lr_plateau_patience=3)
    ),
    # DLDL-v2 on a year each: a label distribution (sd 2 years) and the expected age's error; warm-up and a cosine
    # decay in place of plateau cuts, so that the last epochs settle; grey faces, as scanned prints are.
    "recommended": Recipe(
        RECOMMENDED,
        TrainingConfig(
            label_sigma=2.0,
            expected_age_weight=1.0,
            learning_rate=1e-3,
            schedule="cosine",
            patience=8,
            greyscale=0.2,
        ),
    ),
}


def recipe_with_changes(name: str, changes: Mapping[str, object]) -> Recipe:
    """Recipe `name` with the settings that `changes` gives (None: keep the recipe's); a setting may belong to
    the network or to its training."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, not {name!r}")
    recipe = RECIPES[name]
    known = {f.name for part in (recipe.network, recipe.training) for f in dataclasses.fields(part)}
    unknown = sorted(k for k, v in changes.items() if v is not None and k not in known)
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not a setting of a recipe")
    return Recipe(_changed(recipe.network, changes), _changed(recipe.training, changes))


def _changed(settings, changes: Mapping[str, object]):
    """`settings` (a dataclass) with the fields that `changes` sets."""
    values = {}
    for field in dataclasses.fields(settings):
        value = changes.get(field.name)
        if value is not None:
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(settings, **values)
