import numpy as np
import polars as pl
import pytest

from agenet_pipeline.core.ages import ADIENCE_BINS, SEED_BINS
from agenet_pipeline.evaluation.adience import adience_predictions, benchmark, overlap_matrix
from agenet_pipeline.model.batch_prediction import Predictions


def predictions(ages, probabilities, first_row=0):
    ages = np.asarray(ages, np.float64)
    keys = pl.DataFrame(
        {
            "dataset": "adience",
            "row": list(range(first_row, first_row + len(ages))),
            "bin": SEED_BINS.index(ages).tolist(),
            "age": ages,
            "split": "evaluation",
        }
    )
    return Predictions(keys, np.asarray(probabilities, np.float32))


def seed_one_hot(labels):
    probabilities = np.zeros((len(labels), len(SEED_BINS)))
    probabilities[np.arange(len(labels)), [SEED_BINS.labels.index(label) for label in labels]] = 1
    return probabilities


def faces(folds, users=None):
    return pl.DataFrame(
        {"row": list(range(len(folds))), "fold": folds, "user_id": users or [f"user{f}" for f in folds]}
    )


def test_our_bins_hand_their_probability_to_the_adience_bins_they_overlap():
    matrix = overlap_matrix()
    np.testing.assert_allclose(matrix.sum(axis=1), 1)
    row = dict(zip(ADIENCE_BINS.labels, matrix[SEED_BINS.labels.index("3-6")]))
    assert row["0-2"] == pytest.approx(0.25) and row["4-6"] == pytest.approx(0.75)  # ages 3 | 4, 5, 6
    assert matrix[SEED_BINS.labels.index("60+"), ADIENCE_BINS.labels.index("60+")] == 1
    assert matrix[SEED_BINS.labels.index("27-33"), ADIENCE_BINS.labels.index("25-32")] == 1


def test_the_two_mappings_of_a_prediction_to_adience_bins():
    probabilities = seed_one_hot(["0-2", "27-33", "60+"])
    probabilities[1] = 0.5 * probabilities[1] + 0.5 * seed_one_hot(["60+"])[0]  # expected age 50: 48-53
    assert [ADIENCE_BINS.labels[i] for i in adience_predictions(probabilities, "bin mass")] == ["0-2", "25-32", "60+"]
    assert [ADIENCE_BINS.labels[i] for i in adience_predictions(probabilities, "expected age")] == [
        "0-2",
        "48-53",
        "60+",
    ]
    with pytest.raises(ValueError, match="bin mass, expected age"):
        adience_predictions(probabilities, "mode")


def test_each_fold_is_scored_alone_and_empty_folds_are_skipped_with_a_note():
    ages = [28.5, 28.5, 5.0, 28.5, 50.5]  # folds 0, 0, 0, 2, 2
    answers = seed_one_hot(["27-33", "3-6", "3-6", "60+", "45-59"])
    result = benchmark(predictions(ages, answers), faces([0, 0, 0, 2, 2]))
    bin_mass = result.folds.filter(pl.col("mapping") == "bin mass")
    assert bin_mass["fold"].to_list() == [0, 2] and bin_mass["faces"].to_list() == [3, 2]
    # fold 0: 25-32 right, 4-6 for a 25-32 three bins off, 4-6 right (3-6 is mostly 4-6) -> 2/3 exact, 2/3 one-off
    assert bin_mass["exact"][0] == pytest.approx(2 / 3) and bin_mass["one_off"][0] == pytest.approx(2 / 3)
    assert bin_mass["guess_exact"].to_list() == pytest.approx([2 / 3, 1 / 2])
    assert result.notes == (
        "fold 1: no usable faces, skipped",
        "fold 3: no usable faces, skipped",
        "fold 4: no usable faces, skipped",
    )
    summary = result.summary.filter(pl.col("mapping") == "bin mass")
    assert summary["folds"][0] == 2 and summary["faces"][0] == 5
    assert summary["guess_exact_mean"][0] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert summary["guess_exact_std"][0] == pytest.approx(np.std([2 / 3, 1 / 2], ddof=1))


def test_one_fold_has_no_spread_and_no_fold_has_no_mean():
    one = benchmark(predictions([28.5], seed_one_hot(["27-33"])), faces([3]))
    assert one.summary["exact_std"].to_list() == [None, None]
    assert one.mean("bin mass", "exact") == 1.0
    none = benchmark(predictions([], np.zeros((0, 10))), faces([]))
    assert none.folds.is_empty() and none.summary.is_empty() and len(none.notes) == 5
    assert none.mean("bin mass", "exact") is None


def test_users_in_several_folds_are_noted():
    result = benchmark(predictions([28.5, 28.5], seed_one_hot(["27-33"] * 2)), faces([0, 1], ["same", "same"]))
    assert "1 users have faces in more than one fold" in result.notes[-1]


def test_a_row_without_a_fold_is_an_error():
    with pytest.raises(ValueError, match=r"rows \[1\] have no fold"):
        benchmark(predictions([28.5, 28.5], seed_one_hot(["27-33"] * 2)), faces([0]))
