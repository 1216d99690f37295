"""What the evaluation report says about a model, each score beside the best constant guess.

Scores per dataset and split (the paper's Table 4), the confusion matrix (its Figure 8), precision and recall
per bin, calibration, and UTKFace scores per gender and race. The constant guess answers the most frequent bin
of the model's training set (for bin accuracy) and its median age (for MAE): a model that scores no better has
learned nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import SEED_BINS, AgeBins, answered_age, in_bins, predicted_bins
from agenet_pipeline.datasets.splits import EVALUATION
from agenet_pipeline.model.batch_prediction import Predictions
from agenet_pipeline.model.metrics import ConstantGuess, score

AGGREGATED = "aggregated"
METRICS = ("exact", "one_off", "mae")
UNKNOWN = "unknown"
# Age groups whose MAE is reported apart: children and the old, where age estimators fail most, and the bins.
CHILDREN, OLD = "0-12", "60+"


def _scores(probabilities: np.ndarray, ages: np.ndarray, guess: ConstantGuess, bins: AgeBins) -> dict[str, float]:
    model = score(probabilities, ages, bins)
    guess = guess.scores(ages, bins)
    return {
        **{name: getattr(model, name) for name in METRICS},
        **{f"guess_{name}": getattr(guess, name) for name in METRICS},
    }


def dataset_scores(predictions: Predictions, guess: ConstantGuess, bins: AgeBins = SEED_BINS) -> pl.DataFrame:
    """One row per split and dataset (and all datasets together, `aggregated`): examples, the model's exact,
    one-off and MAE, and the constant guess's."""
    rows = []
    for split in predictions.keys["split"].unique(maintain_order=True):
        in_split = predictions.where(pl.col("split") == split)
        datasets = in_split.keys["dataset"].unique(maintain_order=True).to_list()
        for dataset in [AGGREGATED, *datasets]:
            part = in_split if dataset == AGGREGATED else in_split.where(pl.col("dataset") == dataset)
            scores = _scores(part.probabilities, part.ages, guess, bins)
            rows.append({"dataset": dataset, "split": split, "examples": len(part), **scores})
    return pl.DataFrame(rows)


def confusion_matrix(predictions: Predictions, bins: AgeBins = SEED_BINS) -> np.ndarray:
    """Counts of (true bin, predicted bin): rows are the truth."""
    matrix = np.zeros((len(bins), len(bins)), np.int64)
    np.add.at(matrix, (bins.index(predictions.ages), predicted_bins(predictions.probabilities, bins)), 1)
    return matrix


def per_bin(matrix: np.ndarray, guess_bin: int, bins: AgeBins = SEED_BINS) -> pl.DataFrame:
    """Precision and recall of each bin (None where nothing was predicted, or nothing is in the bin), the
    constant guess's beside them."""
    true_counts, predicted_counts = matrix.sum(axis=1), matrix.sum(axis=0)
    hits = np.diag(matrix)

    def ratio(numerator: float, denominator: float) -> float | None:
        return float(numerator / denominator) if denominator else None

    total = int(matrix.sum())
    return pl.DataFrame(
        {
            "bin": list(bins.labels),
            "examples": true_counts.tolist(),
            "predicted": predicted_counts.tolist(),
            "precision": [ratio(h, p) for h, p in zip(hits, predicted_counts)],
            "recall": [ratio(h, t) for h, t in zip(hits, true_counts)],
            "guess_precision": [ratio(t, total) if i == guess_bin else None for i, t in enumerate(true_counts)],
            "guess_recall": [(1.0 if i == guess_bin else 0.0) if t else None for i, t in enumerate(true_counts)],
        },
        schema_overrides={k: pl.Float64 for k in ("precision", "recall", "guess_precision", "guess_recall")},
    )


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and the reliability table it comes from (confidence = top probability)."""

    ece: float
    table: pl.DataFrame  # lower, upper, examples, confidence (mean), accuracy


def calibration(probabilities: np.ndarray, ages: np.ndarray, bins: AgeBins = SEED_BINS, intervals: int = 10):
    """Examples grouped by confidence into `intervals` equal intervals; the ECE is the example-weighted mean
    gap between accuracy and confidence."""
    if len(ages) == 0:
        raise ValueError("no examples to calibrate")
    predicted = predicted_bins(probabilities, bins)
    confidence = in_bins(probabilities, bins)[np.arange(len(predicted)), predicted].astype(np.float64)
    correct = (predicted == bins.index(ages)).astype(np.float64)
    interval = np.minimum((confidence * intervals).astype(np.int64), intervals - 1)
    rows, ece = [], 0.0
    for i in range(intervals):
        members = interval == i
        count = int(members.sum())
        mean_confidence = float(confidence[members].mean()) if count else None
        accuracy = float(correct[members].mean()) if count else None
        if count:
            ece += count / len(ages) * abs(accuracy - mean_confidence)
        rows.append((i / intervals, (i + 1) / intervals, count, mean_confidence, accuracy))
    schema = {"lower": pl.Float64, "upper": pl.Float64, "examples": pl.Int64}
    table = pl.DataFrame(rows, schema={**schema, "confidence": pl.Float64, "accuracy": pl.Float64}, orient="row")
    return Calibration(ece, table)


@dataclass(frozen=True)
class Gap:
    metric: str
    gap: float
    best: str
    worst: str


@dataclass(frozen=True)
class GroupScores:
    """Scores per value of one attribute (gender, race), and the largest gap between two known groups."""

    attribute: str
    table: pl.DataFrame  # group, examples, exact, one_off, mae, guess_*
    gaps: tuple[Gap, ...]


def group_scores(
    predictions: Predictions, attributes: pl.DataFrame, attribute: str, guess: ConstantGuess, bins: AgeBins = SEED_BINS
) -> GroupScores:
    """Scores of `predictions` per value of `attribute` (a column of `attributes`, joined on dataset and row).
    Rows without the attribute form the group `unknown`, which is left out of the gaps."""
    keys = predictions.keys.with_row_index("position").join(
        attributes.select("dataset", "row", attribute), on=["dataset", "row"], how="left"
    )
    keys = keys.with_columns(pl.col(attribute).fill_null(UNKNOWN))
    rows = []
    for (group,), members in sorted(keys.partition_by(attribute, as_dict=True).items()):
        positions = members["position"].to_numpy()
        scores = _scores(predictions.probabilities[positions], predictions.ages[positions], guess, bins)
        rows.append({"group": group, "examples": len(positions), **scores})
    table = pl.DataFrame(rows)
    known = table.filter(pl.col("group") != UNKNOWN)
    gaps = []
    if known.height >= 2:
        for metric, lower_is_better in (("mae", True), ("exact", False)):
            ordered = known.sort(metric, descending=not lower_is_better)
            best, worst = ordered.row(0, named=True), ordered.row(-1, named=True)
            gaps.append(Gap(metric, abs(worst[metric] - best[metric]), best["group"], worst["group"]))
    return GroupScores(attribute, table, tuple(gaps))


def _age_groups(bins: AgeBins) -> dict[str, tuple[float, float]]:
    """Label -> [low, high) in years: children (0-12) and the old (60+), then each bin."""
    edges = [*bins.cut_points[1:], float("inf")]
    groups = {label: (low, high) for label, low, high in zip(bins.labels, bins.cut_points, edges)}
    return {CHILDREN: (0.0, 13.0), OLD: (60.0, float("inf"))} | groups


def mae_by_age(predictions: Predictions, guess: ConstantGuess, bins: AgeBins = SEED_BINS) -> pl.DataFrame:
    """MAE per age group (0-12 and 60+, then each bin) of each split and dataset (and `aggregated` per split),
    beside the constant guess's; groups without examples are left out."""
    answered = answered_age(predictions.probabilities)
    keys = predictions.keys.select("split", "dataset", "age").with_columns(
        pl.Series("error", np.abs(answered - predictions.ages)), (pl.col("age") - guess.age).abs().alias("guess")
    )
    rows = []
    for split in keys["split"].unique(maintain_order=True):
        in_split = keys.filter(pl.col("split") == split)
        for dataset in [AGGREGATED, *in_split["dataset"].unique(maintain_order=True)]:
            part = in_split if dataset == AGGREGATED else in_split.filter(pl.col("dataset") == dataset)
            for group, (low, high) in _age_groups(bins).items():
                members = part.filter((pl.col("age") >= low) & (pl.col("age") < high))
                if members.height:
                    rows.append(
                        (split, dataset, group, members.height, members["error"].mean(), members["guess"].mean())
                    )
    schema = {"split": pl.String, "dataset": pl.String, "ages": pl.String, "examples": pl.Int64}
    return pl.DataFrame(rows, schema={**schema, "mae": pl.Float64, "guess_mae": pl.Float64}, orient="row")


@dataclass(frozen=True)
class Evaluation:
    guess: ConstantGuess
    scores: pl.DataFrame
    confusion: np.ndarray
    per_bin: pl.DataFrame
    calibration: Calibration
    guess_calibration: Calibration
    groups: tuple[GroupScores, ...]
    by_age: pl.DataFrame  # mae_by_age

    def test_score(self, metric: str, dataset: str = AGGREGATED) -> float:
        return self.score("test", metric, dataset)

    def other_source_scores(self) -> pl.DataFrame:
        """A row per dataset of another source (FG-NET), never trained on: the `evaluation` split's scores."""
        return self.scores.filter((pl.col("split") == EVALUATION) & (pl.col("dataset") != AGGREGATED))

    def score(self, split: str, metric: str, dataset: str = AGGREGATED) -> float:
        row = self.scores.filter((pl.col("split") == split) & (pl.col("dataset") == dataset))
        if row.is_empty():
            raise ValueError(f"no {split} scores for {dataset}")
        return float(row[metric][0])


def evaluate(
    predictions: Predictions,
    train_ages: np.ndarray,
    attributes: pl.DataFrame,
    group_attributes: tuple[str, ...] = ("gender", "race"),
    group_dataset: str = "utkface",
    bins: AgeBins = SEED_BINS,
    calibration_intervals: int = 10,
) -> Evaluation:
    """Everything the report shows. `predictions` hold a `test` split (and optionally `train`, and `evaluation`
    for datasets of another source); the groups are scored on the test rows of `group_dataset`, with their
    attributes from `attributes`."""
    test = predictions.where(pl.col("split") == "test")
    if len(test) == 0:
        raise ValueError("no test predictions: the test split has no shards")
    guess = ConstantGuess.of(train_ages, bins)
    matrix = confusion_matrix(test, bins)
    grouped = test.where(pl.col("dataset") == group_dataset)
    present = [a for a in group_attributes if a in attributes.columns]
    return Evaluation(
        guess=guess,
        scores=dataset_scores(predictions, guess, bins),
        confusion=matrix,
        per_bin=per_bin(matrix, guess.bin, bins),
        calibration=calibration(test.probabilities, test.ages, bins, calibration_intervals),
        guess_calibration=calibration(guess.probabilities(len(test), bins), test.ages, bins, calibration_intervals),
        groups=tuple(group_scores(grouped, attributes, a, guess, bins) for a in present) if len(grouped) else (),
        by_age=mae_by_age(predictions.where(pl.col("split") != "train"), guess, bins),
    )
