import numpy as np
import pytest

from agenet_pipeline.model.cleaning import keep, neighbourhood_mass
from agenet_pipeline.model.metrics import ConstantGuess, constant_guess, score


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


def test_the_constant_guess_of_mae_is_the_median_training_age_which_no_other_constant_beats():
    train = np.array([3.0, 4.0, 5.0, 6.0, 40.0, 41.0, 50.0, 60.0, 70.0])
    guess = ConstantGuess.of(train)
    assert (guess.bin, guess.age) == (1, 40.0)  # 3-6 is the most frequent bin, 40 the median age
    test = np.array([40.0, 45.0, 50.0, 35.0])
    assert guess.scores(test).mae == pytest.approx(5.0)
    for other in np.linspace(0, 100, 201):  # the median of the training ages is the best constant on them
        assert np.mean(np.abs(train - guess.age)) <= np.mean(np.abs(train - other)) + 1e-9
    assert guess.scores(test).mae < score(guess.probabilities(len(test)), test).mae  # the bin's midpoint did worse


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
