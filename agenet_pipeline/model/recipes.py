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
    "recommended": Recipe(RECOMMENDED, TrainingConfig(label_sigma=3.0, learning_rate=1e-3, patience=8)),
}
