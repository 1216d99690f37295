"""The paper's IMDB cleaning: drop an image when a preliminary model gives its labelled bin and the two
adjacent bins less than a threshold of probability together (0.40 in the paper)."""

from __future__ import annotations

import numpy as np


def neighbourhood_mass(probabilities: np.ndarray, labelled_bins: np.ndarray) -> np.ndarray:
    """Probability of the labelled bin plus its neighbours (one neighbour at either end of the scale)."""
    probabilities = np.asarray(probabilities)
    labelled_bins = np.asarray(labelled_bins)
    padded = np.pad(probabilities, ((0, 0), (1, 1)))
    rows = np.arange(len(labelled_bins))
    return padded[rows, labelled_bins] + padded[rows, labelled_bins + 1] + padded[rows, labelled_bins + 2]


def keep(probabilities: np.ndarray, labelled_bins: np.ndarray, threshold: float = 0.40) -> np.ndarray:
    return neighbourhood_mass(probabilities, labelled_bins) >= threshold
