"""Scores of bin probabilities against true ages: exact and one-off bin accuracy, and MAE in years.

The one place these are defined: for numpy arrays (evaluation, cleaning, the Adience benchmark) and as a Keras
metric (training's one-off accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from agenet_pipeline.core.ages import SEED_BINS, AgeBins


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
    """Exact: the most probable bin is the true one; one-off: it is at most one bin away; MAE: of the expected age."""
    probabilities, ages = np.asarray(probabilities), np.asarray(ages, dtype=np.float64)
    if len(ages) == 0:
        raise ValueError("no examples to score")
    exact, one_off = bin_accuracies(probabilities.argmax(axis=1), bins.index(ages))
    mae = float(np.mean(np.abs(bins.expected_age(probabilities) - ages)))
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


class OneOffAccuracy(keras.metrics.MeanMetricWrapper):
    """Share of predictions at most one bin from the true bin (the true bin is the label's most likely bin)."""

    def __init__(self, name: str = "one_off_accuracy", **kwargs):
        def one_off(y_true, y_pred):
            distance = keras.ops.abs(keras.ops.argmax(y_true, axis=-1) - keras.ops.argmax(y_pred, axis=-1))
            return keras.ops.cast(distance <= 1, "float32")

        super().__init__(one_off, name=name, **kwargs)
