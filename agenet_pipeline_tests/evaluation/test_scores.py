import numpy as np
import polars as pl
import pytest

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.evaluation.report import age_table, evaluation_report, inline, linked_files, score_table
from agenet_pipeline.evaluation.scores import (
    calibration,
    confusion_matrix,
    evaluate,
    group_scores,
    mae_by_age,
    per_bin,
)
from agenet_pipeline.model.batch_prediction import Predictions
from agenet_pipeline.model.metrics import ConstantGuess, constant_guess, score


def one_hot(bins, confidence=1.0):
    probabilities = np.full((len(bins), len(SEED_BINS)), (1 - confidence) / (len(SEED_BINS) - 1))
    probabilities[np.arange(len(bins)), bins] = confidence
    return probabilities


def predictions(ages, predicted_bins, split="test", dataset="utkface", first_row=0, confidence=1.0):
    ages = np.asarray(ages, np.float64)
    keys = pl.DataFrame(
        {
            "dataset": [dataset] * len(ages),
            "row": list(range(first_row, first_row + len(ages))),
            "bin": SEED_BINS.index(ages).tolist(),
            "age": ages,
            "split": [split] * len(ages),
        }
    )
    return Predictions(keys, one_hot(predicted_bins, confidence))


def concat(*parts):
    return Predictions(pl.concat([p.keys for p in parts]), np.concatenate([p.probabilities for p in parts]))


def test_scores_per_dataset_and_split_stand_beside_the_constant_guess():
    train_ages = np.array([30.0, 30, 30, 5])
    test = concat(
        predictions([1, 30, 50], [0, 6, 6], dataset="utkface"),
        predictions([30, 70], [6, 9], dataset="appa_real", first_row=10),
    )
    train = predictions(train_ages, [6, 6, 6, 1], split="train", first_row=20)
    evaluation = evaluate(concat(test, train), train_ages, pl.DataFrame({"dataset": [], "row": []}))
    assert evaluation.guess.bin == SEED_BINS.labels.index("27-33")
    scores = evaluation.scores
    assert scores.filter(pl.col("split") == "test")["dataset"].to_list() == ["aggregated", "utkface", "appa_real"]
    assert evaluation.test_score("exact") == pytest.approx(4 / 5)
    assert evaluation.test_score("exact", "utkface") == pytest.approx(2 / 3)
    guess = constant_guess(train_ages, np.array([1, 30, 50, 30, 70]))
    assert evaluation.test_score("guess_exact") == pytest.approx(guess.exact)
    assert evaluation.test_score("guess_mae") == pytest.approx(guess.mae)
    train_row = scores.filter((pl.col("split") == "train") & (pl.col("dataset") == "aggregated"))
    assert train_row["exact"][0] == 1.0 and train_row["examples"][0] == 4


def test_confusion_matrix_and_precision_recall_per_bin():
    test = predictions([1, 1, 5, 30], [0, 1, 1, 1])
    matrix = confusion_matrix(test)
    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[1, 1] == 1 and matrix[6, 1] == 1
    assert matrix.sum() == 4
    table = per_bin(matrix, guess_bin=0)
    rows = {r["bin"]: r for r in table.iter_rows(named=True)}
    assert rows["0-2"]["precision"] == 1.0 and rows["0-2"]["recall"] == 0.5
    assert rows["3-6"]["precision"] == pytest.approx(1 / 3) and rows["3-6"]["recall"] == 1.0
    assert rows["27-33"]["precision"] is None  # never predicted: no precision, not a division by zero
    assert rows["60+"]["recall"] is None  # no examples
    assert rows["0-2"]["guess_precision"] == 0.5 and rows["0-2"]["guess_recall"] == 1.0
    assert rows["3-6"]["guess_recall"] == 0.0


def test_expected_calibration_error():
    ages = np.array([1.0, 1, 30, 30])
    overconfident = one_hot([0, 6, 6, 0], confidence=0.95)  # right half the time, 95% sure
    result = calibration(overconfident, ages)
    assert result.ece == pytest.approx(0.45)
    assert result.table.filter(pl.col("examples") > 0)["lower"].to_list() == [0.9]
    assert calibration(one_hot([0, 0, 6, 6]), ages).ece == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no examples"):
        calibration(np.zeros((0, 10)), np.zeros(0))


def test_utkface_groups_state_the_largest_gap_between_known_groups():
    test = predictions([30, 30, 30, 30, 30], [6, 6, 7, 0, 6])
    attributes = pl.DataFrame(
        {
            "dataset": ["utkface"] * 5,
            "row": [0, 1, 2, 3, 4],
            "gender": ["male", "male", "female", "female", None],
        }
    )
    groups = group_scores(test, attributes, "gender", ConstantGuess(6, 30.0))
    table = {r["group"]: r for r in groups.table.iter_rows(named=True)}
    assert table["male"]["exact"] == 1.0 and table["female"]["exact"] == 0.0 and table["unknown"]["examples"] == 1
    mae_gap = next(g for g in groups.gaps if g.metric == "mae")
    assert (mae_gap.best, mae_gap.worst) == ("male", "female")
    female_mae = score(one_hot([7, 0]), np.array([30.0, 30])).mae
    assert mae_gap.gap == pytest.approx(female_mae)
    exact_gap = next(g for g in groups.gaps if g.metric == "exact")
    assert (exact_gap.best, exact_gap.worst, exact_gap.gap) == ("male", "female", 1.0)


def test_a_single_known_group_has_no_gap():
    test = predictions([30, 30], [6, 6])
    attributes = pl.DataFrame({"dataset": ["utkface"] * 2, "row": [0, 1], "race": ["asian", None]})
    assert group_scores(test, attributes, "race", ConstantGuess(6, 30.0)).gaps == ()


def test_no_test_split_or_no_training_labels_is_an_error():
    train = predictions([30], [6], split="train")
    with pytest.raises(ValueError, match="no test predictions"):
        evaluate(train, np.array([30.0]), pl.DataFrame({"dataset": [], "row": []}))
    with pytest.raises(ValueError, match="no training ages"):
        ConstantGuess.of(np.array([])).bin


def test_the_report_shows_table_4_with_guesses_and_inline_or_linked_images():
    train_ages = np.array([30.0, 30, 5])
    test = concat(
        predictions([1, 30, 50], [0, 6, 6], dataset="utkface"),
        predictions([30, 70], [6, 9], dataset="imdb_wiki", first_row=10),
    )
    attributes = pl.DataFrame({"dataset": ["utkface"] * 3, "row": [0, 1, 2], "gender": ["male", "female", "male"]})
    evaluation = evaluate(test, train_ages, attributes)
    table = score_table(evaluation.scores, "exact")
    assert table["dataset"].to_list() == ["aggregated", "UTKFace", "IMDB"]
    assert table.columns == ["dataset", "test", "test (constant guess)", "test examples"]
    images = {name: b"\x89PNG" for name in ("confusion_matrix.png", "reliability.png", "feature_maps.png")}
    for link, expected in ((linked_files, "](confusion_matrix.png)"), (inline(images), "data:image/png;base64,")):
        text = evaluation_report("Evaluation", {"run": "abc"}, evaluation, link)
        assert expected in text
        assert "Table 4" in text and "constant guess" in text and "Largest MAE gap by gender" in text


def test_mae_by_age_group_per_split_and_dataset_beside_the_guess():
    """Children, the old and each bin apart, for the test split and a dataset of another source; a group without
    examples is left out."""
    test = predictions([1, 5, 10, 30, 70], [0, 1, 2, 6, 9])  # each in its true bin
    fgnet = predictions([4, 8], [9, 9], split="evaluation", dataset="fgnet")  # children taken for 60+
    guess = ConstantGuess(bin=6, age=30.0)
    by_age = mae_by_age(concat(test, fgnet), guess)

    def row(split, dataset, ages):
        [found] = by_age.filter(
            (pl.col("split") == split) & (pl.col("dataset") == dataset) & (pl.col("ages") == ages)
        ).iter_rows(named=True)
        return found

    expected = SEED_BINS.midpoints
    children = row("test", "aggregated", "0-12")
    assert children["examples"] == 3
    assert children["mae"] == pytest.approx(np.mean(np.abs(np.array(expected[:3]) - [1, 5, 10])))
    assert children["guess_mae"] == pytest.approx(np.mean([29, 25, 20]))
    assert row("test", "utkface", "60+")["mae"] == pytest.approx(abs(expected[9] - 70))
    assert row("evaluation", "fgnet", "0-12")["mae"] == pytest.approx(np.mean([expected[9] - 4, expected[9] - 8]))
    assert by_age.filter((pl.col("dataset") == "fgnet") & (pl.col("ages") == "60+")).is_empty()

    table = age_table(by_age)
    assert table.columns[:4] == [
        "ages",
        "test, aggregated: MAE",
        "test, aggregated: constant guess",
        "test, aggregated: examples",
    ]
    assert "other source, FG-NET: MAE" in table.columns
    assert table["ages"].to_list()[:3] == ["0-12", "60+", "0-2"]


def test_the_report_scores_another_source_in_its_own_column():
    test = predictions([5, 30, 70], [1, 6, 9])
    fgnet = predictions([4, 40], [1, 7], split="evaluation", dataset="fgnet")
    evaluation = evaluate(concat(test, fgnet), np.array([20.0, 30.0, 40.0]), pl.DataFrame({"dataset": [], "row": []}))
    assert evaluation.score("evaluation", "mae", "fgnet") == pytest.approx(
        np.mean(np.abs(np.array([SEED_BINS.midpoints[1], SEED_BINS.midpoints[7]]) - [4, 40]))
    )
    table = score_table(evaluation.scores, "mae")
    assert {"test", "other source", "other source (constant guess)"} <= set(table.columns)
    assert table.filter(pl.col("dataset") == "FG-NET")["test"].to_list() == [None]
    text = evaluation_report("t", {}, evaluation, linked_files)
    assert "## MAE by age group" in text and "other source, FG-NET: MAE" in text
