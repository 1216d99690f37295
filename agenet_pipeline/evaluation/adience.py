"""The Adience benchmark: the five official folds, scored one by one, mean and spread over the folds.

The model answers in our ten bins or in years; Adience has eight gapped bins. Two mappings are reported:
- `bin mass`: each of the model's bins (a year, or one of our ten) hands its probability to the Adience bins its
  age range overlaps, in proportion to the years of overlap (Adience's ranges taken up to its cut points 0, 4, 7,
  14, 24, 36, 46, 57), and the most probable Adience bin is the answer;
- `expected age` (the paper's): the age the network answers, binned by the same cut points (for a network over
  years, its median year: `core.ages.predicted_bins`).
Beside both stands the constant guess 25-32, Adience's most frequent bin. Exact: the true Adience bin;
one-off: at most one Adience bin away.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import ADIENCE_BINS, MAX_AGE, SEED_BINS, AgeBins, output_bins, predicted_bins
from agenet_pipeline.datasets.adience import FOLDS
from agenet_pipeline.model.batch_prediction import Predictions
from agenet_pipeline.model.metrics import bin_accuracies

GUESS_LABEL = "25-32"
MAPPINGS = ("bin mass", "expected age")


def _ranges(bins: AgeBins) -> list[tuple[float, float]]:
    edges = [*bins.cut_points, MAX_AGE]
    return list(itertools.pairwise(edges))


def overlap_matrix(source: AgeBins = SEED_BINS, target: AgeBins = ADIENCE_BINS) -> np.ndarray:
    """M[i, j]: the share of source bin i's age range inside target bin j's range; rows sum to 1."""
    matrix = np.array(
        [[max(0.0, min(b, d) - max(a, c)) for c, d in _ranges(target)] for a, b in _ranges(source)], np.float64
    )
    return matrix / matrix.sum(axis=1, keepdims=True)


def adience_predictions(probabilities: np.ndarray, mapping: str) -> np.ndarray:
    """The Adience bin each example is given under `mapping` (one of MAPPINGS)."""
    if mapping == "bin mass":
        return (np.asarray(probabilities, np.float64) @ overlap_matrix(output_bins(probabilities))).argmax(axis=1)
    if mapping == "expected age":
        return predicted_bins(probabilities, ADIENCE_BINS)
    raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}, not {mapping!r}")


def fold_scores(predictions: Predictions, fold: int) -> list[dict]:
    """One row per mapping: exact and one-off of the model and of the constant guess on one fold's faces."""
    truth = ADIENCE_BINS.index(predictions.ages)
    guess = np.full(len(truth), ADIENCE_BINS.labels.index(GUESS_LABEL))
    guess_exact, guess_one_off = bin_accuracies(guess, truth)
    rows = []
    for mapping in MAPPINGS:
        exact, one_off = bin_accuracies(adience_predictions(predictions.probabilities, mapping), truth)
        rows.append(
            {
                "fold": fold,
                "mapping": mapping,
                "faces": len(truth),
                "exact": exact,
                "one_off": one_off,
                "guess_exact": guess_exact,
                "guess_one_off": guess_one_off,
            }
        )
    return rows


FOLD_SCHEMA = {
    "fold": pl.Int64,
    "mapping": pl.String,
    "faces": pl.Int64,
    "exact": pl.Float64,
    "one_off": pl.Float64,
    "guess_exact": pl.Float64,
    "guess_one_off": pl.Float64,
}


@dataclass(frozen=True)
class Benchmark:
    """Per-fold scores (one row per fold and mapping), their mean and spread, and what was skipped and why."""

    folds: pl.DataFrame
    notes: tuple[str, ...]

    @property
    def summary(self) -> pl.DataFrame:
        """Mean and standard deviation (sample, over the folds scored; null with fewer than two) per mapping."""
        columns = ("exact", "one_off", "guess_exact", "guess_one_off")
        return (
            self.folds.group_by("mapping", maintain_order=True)
            .agg(
                pl.len().alias("folds"),
                pl.col("faces").sum(),
                *(pl.col(c).mean().alias(f"{c}_mean") for c in columns),
                *(pl.col(c).std(ddof=1).alias(f"{c}_std") for c in columns),
            )
            .sort("mapping")
        )

    def mean(self, mapping: str, column: str) -> float | None:
        row = self.summary.filter(pl.col("mapping") == mapping)
        return None if row.is_empty() else row[f"{column}_mean"][0]


def shared_users(faces: pl.DataFrame) -> pl.DataFrame:
    """Users whose faces are in more than one fold (the official folds have none: the protocol is
    subject-exclusive)."""
    return faces.group_by("user_id").agg(pl.col("fold").unique().sort()).filter(pl.col("fold").list.len() > 1)


def benchmark(
    predictions: Predictions, faces: pl.DataFrame, skipped: Mapping[int, str] | None = None, folds: int = FOLDS
) -> Benchmark:
    """Score each fold of `predictions` (Adience rows; `faces` gives each row's fold and user_id).

    A fold without predictions is skipped with a note (its reason from `skipped`, else: no usable faces),
    never divided by."""
    keyed = predictions.keys.with_row_index("position").join(
        faces.select("row", "fold", "user_id"), on="row", how="left"
    )
    unknown = keyed.filter(pl.col("fold").is_null())
    if not unknown.is_empty():
        raise ValueError(f"Adience rows {unknown['row'].head(5).to_list()} have no fold in the splits table")
    rows, notes = [], []
    for fold in range(folds):
        positions = keyed.filter(pl.col("fold") == fold)["position"].to_numpy()
        if len(positions) == 0:
            notes.append(f"fold {fold}: {(skipped or {}).get(fold, 'no usable faces, skipped')}")
            continue
        part = Predictions(predictions.keys[positions], predictions.probabilities[positions])
        rows += fold_scores(part, fold)
    shared = shared_users(faces)
    if not shared.is_empty():
        notes.append(f"{shared.height} users have faces in more than one fold: the folds are not subject-exclusive")
    return Benchmark(pl.DataFrame(rows, schema=FOLD_SCHEMA), tuple(notes))
