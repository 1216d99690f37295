"""Binned labels: every face row of every dataset in one table, usable rows with their age bins."""

from __future__ import annotations

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import ADIENCE_BINS, SEED_BINS, AgeBins
from agenet_pipeline.core.status import OK

LABEL_COLUMNS = [
    "dataset",
    "row",
    "image_path",
    "age",
    "age_source",
    "split_group",
    "status",
    "detail",
    "crop_sha256",
    "crop_bytes",
    "face_source",
    "detector_score",
]
KEPT_IF_PRESENT = ["fold", "user_id", "gender", "race"]


def _bin_column(labels: pl.DataFrame, usable: np.ndarray, scheme: AgeBins, name: str) -> pl.Expr:
    index = np.zeros(labels.height, np.int64)
    index[usable] = scheme.index(labels["age"].to_numpy()[usable])
    return pl.when(pl.col("status") == OK).then(pl.Series(index)).alias(name)


def binned_labels(face_tables: list[pl.DataFrame]) -> pl.DataFrame:
    """One table of all datasets' face rows (crops left out), with `bin` (seed scheme) and `adience_bin`."""
    frames = [
        faces.select(*LABEL_COLUMNS, *(c for c in KEPT_IF_PRESENT if c in faces.columns)) for faces in face_tables
    ]
    labels = pl.concat(frames, how="diagonal_relaxed")
    usable = (labels["status"] == OK).to_numpy()
    return labels.with_columns(
        _bin_column(labels, usable, SEED_BINS, "bin"), _bin_column(labels, usable, ADIENCE_BINS, "adience_bin")
    )
