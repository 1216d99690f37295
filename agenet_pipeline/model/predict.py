"""Running a trained network over TFRecord files: probabilities with the keys of the rows they belong to."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import polars as pl

from agenet_pipeline.faces.tfrecords import DATASET_IDS
from agenet_pipeline.model.input import examples

DATASET_NAMES = {i: name for name, i in DATASET_IDS.items()}


def predict_files(model: keras.Model, files: Sequence[str], batch_size: int = 64) -> tuple[pl.DataFrame, np.ndarray]:
    """(a table of dataset, row, bin, age per example, their bin probabilities), in the same order."""
    input_size = model.input_shape[1]
    keys, probabilities = [], []
    for batch in examples(files, input_size, batch_size):
        probabilities.append(model.predict_on_batch(batch["image"]))
        keys.append({k: batch[k].numpy() for k in ("dataset", "row", "bin", "age")})
    if not keys:
        return pl.DataFrame(
            schema={"dataset": pl.String, "row": pl.Int64, "bin": pl.Int64, "age": pl.Float64}
        ), np.zeros((0, model.output_shape[-1]), np.float32)
    table = pl.DataFrame({k: np.concatenate([b[k] for b in keys]) for k in keys[0]})
    table = table.with_columns(
        pl.col("dataset").replace_strict(DATASET_NAMES, return_dtype=pl.String), pl.col("age").cast(pl.Float64)
    )
    return table, np.concatenate(probabilities)
