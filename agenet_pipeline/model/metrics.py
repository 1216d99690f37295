"""Scores of a network's output against true ages: exact and one-off bin accuracy, and MAE in years.

The one place these are defined: for numpy arrays (evaluation, cleaning, the Adience benchmark) and as Keras
metrics (training's). The output may be over the paper's bins or over years (`core.ages.OUTPUTS`): accuracy is
always of the paper's bins, the MAE of the age the output answers (`core.ages.answered_age`).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from agenet_pipeline.core.ages import SEED_BINS, YEARS, AgeBins, answered_age, predicted_bins


@dataclass(frozen=True)
class Scores:
    exact: float
    one_off: float
    mae: float
    count: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}exact_accuracy": self.exact,
            f"{prefix}one_off_accuracy": self.one_off,
            f"{prefix}mae_years": self.mae,
        }


def bin_accuracies(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(exact, one-off): the share of predicted bins equal to the true bin, and at most one bin away."""
    distance = np.abs(np.asarray(predicted) - np.asarray(truth))
    return float(np.mean(distance == 0)), float(np.mean(distance <= 1))


def score(probabilities: np.ndarray, ages: np.ndarray, bins: AgeBins = SEED_BINS) -> Scores:
    """Exact: the answered bin is the true one; one-off: it is at most one bin away; MAE: of the answered age."""
    probabilities, ages = np.asarray(probabilities), np.asarray(ages, dtype=np.float64)
    if len(ages) == 0:
        raise ValueError("no examples to score")
    exact, one_off = bin_accuracies(predicted_bins(probabilities, bins), bins.index(ages))
    mae = float(np.mean(np.abs(answered_age(probabilities) - ages)))
    return Scores(exact=exact, one_off=one_off, mae=mae, count=len(ages))


@dataclass(frozen=True)
class ConstantGuess:
    """The best constant answers, learned from the training ages: what a model must beat to have learned. For bin
    accuracy, the most frequent training bin; for MAE, the median training age (the constant that minimises it)."""

    bin: int
    age: float

    @classmethod
    def of(cls, train_ages: np.ndarray, bins: AgeBins = SEED_BINS) -> ConstantGuess:
        train_ages = np.asarray(train_ages, dtype=np.float64)
        if len(train_ages) == 0:
            raise ValueError("no training ages: the constant guess needs the training split's labels")
        return cls(int(np.bincount(bins.index(train_ages), minlength=len(bins)).argmax()), float(np.median(train_ages)))

    def probabilities(self, examples: int, bins: AgeBins = SEED_BINS) -> np.ndarray:
        """Always the guessed bin, with full confidence."""
        guess = np.zeros((examples, len(bins)), np.float32)
        guess[:, self.bin] = 1.0
        return guess

    def scores(self, ages: np.ndarray, bins: AgeBins = SEED_BINS) -> Scores:
        ages = np.asarray(ages, dtype=np.float64)
        if len(ages) == 0:
            raise ValueError("no examples to score")
        exact, one_off = bin_accuracies(np.full(len(ages), self.bin), bins.index(ages))
        return Scores(exact=exact, one_off=one_off, mae=float(np.mean(np.abs(self.age - ages))), count=len(ages))


def constant_guess(train_ages: np.ndarray, test_ages: np.ndarray, bins: AgeBins = SEED_BINS) -> Scores:
    return ConstantGuess.of(train_ages, bins).scores(test_ages, bins)


class BinAccuracy(keras.metrics.MeanMetricWrapper):
    """Share of predictions at most `within` of the paper's bins from the true bin (the label's most likely bin;
    a per-year label summed into the bins), the predicted bin as `core.ages.predicted_bins` reads it (`output`:
    the bins the network outputs)."""

    def __init__(self, within: int = 0, output: AgeBins = SEED_BINS, name: str = "accuracy", **kwargs):
        coarsening = keras.ops.convert_to_tensor(output.coarsening(SEED_BINS), "float32")
        inner_cut_points = [float(age) for age in SEED_BINS.cut_points[1:]]

        def accuracy(y_true, y_pred):
            truth = keras.ops.argmax(keras.ops.cast(y_true, "float32") @ coarsening, axis=-1)
            if output == SEED_BINS:
                predicted = keras.ops.argmax(y_pred, axis=-1)
            else:
                predicted = keras.ops.digitize(keras.ops.cast(median_year_of(y_pred), "float32"), inner_cut_points)
            distance = keras.ops.abs(keras.ops.cast(truth, "int32") - keras.ops.cast(predicted, "int32"))
            return keras.ops.cast(distance <= within, "float32")

        super().__init__(accuracy, name=name, **kwargs)


class AgeError(keras.metrics.MeanMetricWrapper):
    """Mean absolute difference, in years, between the ages that the prediction and the label answer
    (`core.ages.answered_age`)."""

    def __init__(self, output: AgeBins = SEED_BINS, name: str = "mae_years", **kwargs):
        def error(y_true, y_pred):
            return keras.ops.abs(answered_age_of(y_pred, output) - answered_age_of(y_true, output))

        super().__init__(error, name=name, **kwargs)


def expected_age_of(probabilities, midpoints):
    """Keras ops: the expected age of each row of bin probabilities."""
    return keras.ops.sum(keras.ops.cast(probabilities, "float32") * midpoints, axis=-1)


def median_year_of(probabilities):
    """Keras ops: `core.ages.median_year` of each row of probabilities over years."""
    return _year_of_half(keras.ops.cumsum(keras.ops.cast(probabilities, "float32"), axis=-1))


def _year_of_half(cumulative):
    return keras.ops.minimum(keras.ops.sum(keras.ops.cast(cumulative < 0.5, "int32"), axis=-1), len(YEARS) - 1)


def answered_age_of(probabilities, output: AgeBins):
    """Keras ops: `core.ages.answered_age` of each row of probabilities over `output`."""
    probabilities = keras.ops.cast(probabilities, "float32")
    if output != YEARS:
        return expected_age_of(probabilities, keras.ops.convert_to_tensor(output.midpoints, "float32"))
    cumulative = keras.ops.cumsum(probabilities, axis=-1)
    year = _year_of_half(cumulative)
    at_year = keras.ops.one_hot(year, len(YEARS))
    mass = keras.ops.sum(probabilities * at_year, axis=-1)
    below = keras.ops.sum(cumulative * at_year, axis=-1) - mass
    return keras.ops.cast(year, "float32") - 0.5 + (0.5 - below) / keras.ops.maximum(mass, 1e-12)


def training_metrics(output: AgeBins) -> list[keras.metrics.Metric]:
    """What `fit` reports each epoch: exact and one-off accuracy in the paper's bins, and the MAE in years."""
    return [
        BinAccuracy(0, output, name="accuracy"),
        BinAccuracy(1, output, name="one_off_accuracy"),
        AgeError(output),
    ]
