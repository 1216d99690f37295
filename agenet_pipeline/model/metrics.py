"""Scores of bin probabilities against true ages: exact and one-off bin accuracy, and MAE in years."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agenet_pipeline.model.bins import SEED_BINS, AgeBins


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


def score(probabilities: np.ndarray, ages: np.ndarray, bins: AgeBins = SEED_BINS) -> Scores:
    """Exact: the most probable bin is the true one; one-off: it is at most one bin away; MAE: of the expected age."""
    probabilities, ages = np.asarray(probabilities), np.asarray(ages, dtype=np.float64)
    if len(ages) == 0:
        raise ValueError("no examples to score")
    truth = bins.index(ages)
    predicted = probabilities.argmax(axis=1)
    return Scores(
        exact=float(np.mean(predicted == truth)),
        one_off=float(np.mean(np.abs(predicted - truth) <= 1)),
        mae=float(np.mean(np.abs(bins.expected_age(probabilities) - ages))),
        count=len(ages),
    )


def constant_guess(train_ages: np.ndarray, test_ages: np.ndarray, bins: AgeBins = SEED_BINS) -> Scores:
    """The scores of always answering the most frequent training bin: what a model must beat to have learned."""
    most_frequent = np.bincount(bins.index(train_ages), minlength=len(bins)).argmax()
    guess = np.zeros((len(test_ages), len(bins)))
    guess[:, most_frequent] = 1.0
    return score(guess, test_ages, bins)
