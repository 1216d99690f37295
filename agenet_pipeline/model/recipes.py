"""Recipes: a network and the way to train it, named. `seed` is the paper's; `recommended` is ours."""

from __future__ import annotations

from dataclasses import dataclass

from agenet_pipeline.model.architecture import RECOMMENDED, SEED, ModelConfig
from agenet_pipeline.model.training import TrainingConfig


@dataclass(frozen=True)
class Recipe:
    network: ModelConfig
    training: TrainingConfig


RECIPES = {
    "seed": Recipe(SEED, TrainingConfig()),
    # At 1e-3 the validation loss is noisy: the learning rate is cut after 3 epochs without improvement, so that
    # early stopping does not end training at a lucky epoch.
    "recommended": Recipe(
        RECOMMENDED, TrainingConfig(label_sigma=3.0, learning_rate=1e-3, patience=8, lr_plateau_patience=3)
    ),
}
