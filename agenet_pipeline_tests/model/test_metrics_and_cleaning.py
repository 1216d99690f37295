import numpy as np
import pytest

from agenet_pipeline.model.cleaning import keep, neighbourhood_mass
from agenet_pipeline.model.metrics import constant_guess, score


def one_hot(indices, bins=10):
    return np.eye(bins)[indices]


def test_scores_of_known_predictions():
    ages = np.array([1.0, 30.0, 50.0, 70.0])  # bins 0, 6, 8, 9
    probabilities = one_hot([0, 7, 5, 9])
    scores = score(probabilities, ages)
    assert scores.exact == 0.5 and scores.one_off == 0.75 and scores.count == 4
    # Expected ages are the midpoints 1, 39, 24.5, 70.
    assert scores.mae == pytest.approx((0 + 9 + 25.5 + 0) / 4)


def test_constant_guess_answers_the_most_frequent_training_bin():
    guess = constant_guess(np.array([30, 31, 32, 5]), np.array([30.0, 5.0, 70.0]))
    assert guess.exact == pytest.approx(1 / 3) and guess.one_off == pytest.approx(1 / 3)


def test_neighbourhood_mass_includes_both_neighbours_and_stops_at_the_ends():
    probabilities = np.full((3, 10), 0.1)
    assert neighbourhood_mass(probabilities, np.array([0, 5, 9])) == pytest.approx([0.2, 0.3, 0.2])


def test_cleaning_keeps_at_the_threshold_and_drops_below():
    probabilities = np.zeros((3, 10))
    probabilities[0, [3, 4, 5]] = [0.1, 0.2, 0.1]  # 0.40 around bin 4: kept
    probabilities[1, [3, 4, 5]] = [0.1, 0.1, 0.1]  # 0.30: dropped
    probabilities[2, 9] = 1.0  # labelled 0, predicted 60+: dropped
    assert keep(probabilities, np.array([4, 4, 0])).tolist() == [True, False, False]
    assert keep(probabilities, np.array([4, 4, 0]), threshold=0.3).tolist() == [True, True, False]
