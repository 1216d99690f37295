"""A trained network's bin probabilities over the shards of several splits and datasets, with their keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import polars as pl

from agenet_pipeline.model.bins import SEED_BINS, AgeBins
from agenet_pipeline.model.predict import predict_files

KEY_SCHEMA = {"dataset": pl.String, "row": pl.Int64, "bin": pl.Int64, "age": pl.Float64, "split": pl.String}


@dataclass(frozen=True)
class Predictions:
    """One row of `keys` (dataset, row, bin, age, split) per example, and its bin probabilities."""

    keys: pl.DataFrame
    probabilities: np.ndarray

    def __len__(self) -> int:
        return self.keys.height

    def where(self, condition: pl.Expr) -> Predictions:
        mask = self.keys.select(condition.alias("mask"))["mask"].to_numpy()
        return Predictions(self.keys.filter(pl.Series(mask)), self.probabilities[mask])

    @property
    def ages(self) -> np.ndarray:
        return self.keys["age"].to_numpy()

    def table(self, bins: AgeBins = SEED_BINS) -> pl.DataFrame:
        """The keys with the predicted bin, the expected age and the probabilities, for a Parquet file."""
        return self.keys.with_columns(
            pl.Series("predicted_bin", self.probabilities.argmax(axis=1), pl.Int64),
            pl.Series("expected_age", bins.expected_age(self.probabilities)),
            pl.Series("probabilities", self.probabilities.tolist(), pl.List(pl.Float32)),
        )


def concat(parts: Sequence[Predictions]) -> Predictions:
    if not parts:
        return Predictions(pl.DataFrame(schema=KEY_SCHEMA), np.zeros((0, len(SEED_BINS)), np.float32))
    return Predictions(
        pl.concat([p.keys for p in parts]), np.concatenate([p.probabilities for p in parts]).astype(np.float32)
    )


def predict_sets(model: keras.Model, files: Mapping[tuple[str, str], Sequence[str]]) -> Predictions:
    """Predictions for each (split, dataset) of `files` that has files, the split named in the keys."""
    parts = []
    for (split, _dataset), paths in files.items():
        if paths:
            keys, probabilities = predict_files(model, [str(p) for p in paths])
            parts.append(Predictions(keys.with_columns(pl.lit(split).alias("split")), probabilities))
    return concat(parts)
