"""Running a trained network over TFRecord files: bin probabilities with the keys of the rows they belong to.

The files are read with `tf.data` on the TensorFlow backend, with `model.loader` on the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import polars as pl

from agenet_pipeline.core.ages import SEED_BINS, AgeBins, answered_age, in_bins, predicted_bins
from agenet_pipeline.core.datasets import BY_ID
from agenet_pipeline.core.mirroring import output_both_ways
from agenet_pipeline.model.devices import uses_tf_data

KEY_SCHEMA = {"dataset": pl.String, "row": pl.Int64, "bin": pl.Int64, "age": pl.Float64, "split": pl.String}


def predict_files(model: keras.Model, files: Sequence[str], batch_size: int = 64) -> tuple[pl.DataFrame, np.ndarray]:
    """(a table of dataset, row, bin, age per example, the network's output for each: `core.mirroring`), in the same
    order."""
    input_size = model.input_shape[1]
    keys, probabilities = [], []
    for batch in example_batches(files, input_size, batch_size):
        probabilities.append(output_both_ways(model.predict_on_batch, batch["image"]))
        keys.append({k: np.asarray(batch[k]) for k in ("dataset", "row", "bin", "age")})
    if not keys:
        return pl.DataFrame(schema={k: v for k, v in KEY_SCHEMA.items() if k != "split"}), np.zeros(
            (0, model.output_shape[-1]), np.float32
        )
    table = pl.DataFrame({k: np.concatenate([b[k] for b in keys]) for k in keys[0]})
    table = table.with_columns(
        pl.col("dataset").replace_strict(BY_ID, return_dtype=pl.String), pl.col("age").cast(pl.Float64)
    )
    return table, np.concatenate(probabilities)


def example_batches(files: Sequence[str], input_size: int, batch_size: int):
    """Batches of dicts (image, bin, age, dataset, row) in file order, read by the backend's input path."""
    if uses_tf_data():
        from agenet_pipeline.model.input import examples

        return examples(files, input_size, batch_size)
    from agenet_pipeline.model.loader import example_batches as loader_batches

    return loader_batches(files, input_size, batch_size)


@dataclass(frozen=True)
class Predictions:
    """One row of `keys` (dataset, row, bin, age, split) per example, and the network's output for it (over the
    paper's bins or over years: `core.ages.OUTPUTS`)."""

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
        """The keys with the predicted bin and age (`core.ages.answered_age`) and the bin probabilities, for a Parquet
        file."""
        return self.keys.with_columns(
            pl.Series("predicted_bin", predicted_bins(self.probabilities, bins), pl.Int64),
            pl.Series("predicted_age", answered_age(self.probabilities)),
            pl.Series("probabilities", in_bins(self.probabilities, bins).tolist(), pl.List(pl.Float32)),
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
