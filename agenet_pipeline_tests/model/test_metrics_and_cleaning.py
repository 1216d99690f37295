import keras
import numpy as np
import polars as pl
import pytest

from agenet_pipeline.core.ages import SEED_BINS, YEARS, answered_age
from agenet_pipeline.core.files import write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.faces.storage import write_shard
from agenet_pipeline.model.cleaning import clean_imdb, keep, neighbourhood_mass
from agenet_pipeline.model.loader import soft_labels
from agenet_pipeline.model.metrics import ConstantGuess, constant_guess, score, training_metrics
from agenet_pipeline.model.records import shard_files, shard_name, write_shards
from agenet_pipeline_tests.formats import jpeg


def one_hot(indices, bins=10):
    return np.eye(bins)[indices]


def test_scores_of_known_predictions():
    ages = np.array([1.0, 30.0, 50.0, 70.0])  # bins 0, 6, 8, 9
    probabilities = one_hot([0, 7, 5, 9])
    scores = score(probabilities, ages)
    assert scores.exact == 0.5 and scores.one_off == 0.75 and scores.count == 4
    # Expected ages are the midpoints 1, 39, 24.5, 70.
    assert scores.mae == pytest.approx((0 + 9 + 25.5 + 0) / 4)


def test_a_label_distribution_over_years_answers_its_own_age():
    """Training centres an age of k whole years at k + 0.5; the median age takes that half year back off. Only
    the ends are off: below 0 and from 100 on, a label's tail is folded into the first or last year."""
    ages = np.arange(1.0, 99.0)
    for sigma in (1.0, 2.0, 3.0):
        assert answered_age(soft_labels(ages, YEARS, sigma)) == pytest.approx(ages, abs=1e-4)


@pytest.mark.parametrize("output", [SEED_BINS, YEARS])
def test_the_training_metrics_are_the_evaluation_scores(output):
    """What `fit` reports each epoch is what `score` gives the same outputs, against labels that answer the ages."""
    rng = np.random.default_rng(0)
    ages = rng.integers(1, 90, 64).astype(np.float64)
    predicted = rng.dirichlet(np.full(len(output), 0.3), 64).astype(np.float32)
    labels = soft_labels(ages, output, 2.0) if output == YEARS else one_hot(SEED_BINS.index(ages))
    truth = answered_age(labels)
    found = {}
    for metric in training_metrics(output):
        metric.update_state(labels, predicted)
        found[metric.name] = float(metric.result())
    expected = score(predicted, truth)
    assert found == pytest.approx(
        {"accuracy": expected.exact, "one_off_accuracy": expected.one_off, "mae_years": expected.mae}, abs=1e-4
    )


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


# Ages by split, two per bin of interest: the preliminary model below always answers 0-2, so the rows labelled 0-2
# or 3-6 are kept and the others dropped, whatever their split.
IMDB_AGES = {"train": [1, 4, 30, 70, 1, 50], "validation": [2, 40, 5], "test": [1, 30, 70, 45]}


def always_0_to_2(input_size: int) -> keras.Model:
    """A network that gives bin 0 (0-2 years) all its probability, whatever the photo."""
    inputs = keras.Input((input_size, input_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    bias = keras.initializers.Constant([30.0] + [0.0] * 9)
    outputs = keras.layers.Dense(10, "softmax", kernel_initializer="zeros", bias_initializer=bias)(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture
def imdb_home(tmp_path) -> Home:
    """A home as the data assets and the preliminary model leave it: IMDB face shards, splits, TFRecord shards
    of each split, the preliminary model."""
    home = Home.at(tmp_path)
    rng = np.random.default_rng(0)
    rows = [(split, age) for split, ages in IMDB_AGES.items() for age in ages]
    crops = [jpeg(draw_face(float(age), rng, 64)) for _, age in rows]
    write_shard(
        pl.DataFrame({"row": range(len(rows)), "crop_jpeg": crops}),
        home.faces_folder("imdb_wiki") / "shard-00000.parquet",
        "test",
    )
    splits = pl.DataFrame(
        {
            "dataset": "imdb_wiki",
            "row": range(len(rows)),
            "split": [split for split, _ in rows],
            "age": [float(age) for _, age in rows],
            "bin": [int(SEED_BINS.index(age)) for _, age in rows],
            "crop_bytes": [len(crop) for crop in crops],
            "image_path": [f"{row:02d}/nm{row}.jpg" for row in range(len(rows))],
        }
    )
    write_parquet(splits, home.splits_path)
    for split in IMDB_AGES:
        name = shard_name(split, "imdb_wiki")
        write_shards(
            splits.filter(pl.col("split") == split),
            "imdb_wiki",
            home.faces_folder("imdb_wiki"),
            home.shards_folder,
            name,
        )
    home.model_path("preliminary_model").parent.mkdir()
    always_0_to_2(32).save(home.model_path("preliminary_model"))
    return home


def rows_in(files) -> list[int]:
    import tensorflow as tf

    from agenet_pipeline.model.records import feature_spec

    return sorted(
        int(tf.io.parse_single_example(record, feature_spec())["row"]) for record in tf.data.TFRecordDataset(files)
    )


def test_cleaning_judges_and_drops_only_training_and_validation_rows(imdb_home):
    splits = pl.read_parquet(imdb_home.splits_path)
    test_rows = splits.filter(pl.col("split") == "test")["row"].to_list()
    test_shards = shard_files(imdb_home.shards_folder, shard_name("test", "imdb_wiki"))
    test_bytes = [path.read_bytes() for path in test_shards]

    cleaning = clean_imdb(imdb_home, threshold=0.40)

    judged = cleaning.judged.join(splits.select("row", pl.col("split").alias("assigned")), on="row")
    assert (judged["split"] == judged["assigned"]).all()
    assert sorted(judged["row"]) == splits.filter(pl.col("split") != "test")["row"].sort().to_list()
    assert not set(judged["row"]) & set(test_rows)
    # 0-2 and 3-6 kept, the rest dropped: the cleaning did drop rows, and none of them from the test split
    assert cleaning.kept_per_split() == {"train": (3, 6), "validation": (2, 3)}
    assert pl.read_parquet(imdb_home.imdb_cleaned_path)["row"].sort().to_list() == sorted(judged["row"])

    cleaned = sorted(path.name.split("-0")[0] for path in imdb_home.cleaned_shards_folder.iterdir())
    assert cleaned == ["train-imdb_wiki", "validation-imdb_wiki"]
    kept = judged.filter(pl.col("kept"))["row"].sort().to_list()
    assert rows_in([str(p) for p in imdb_home.cleaned_shards_folder.iterdir()]) == kept
    assert set(splits.filter(pl.col("row").is_in(kept))["split"]) == {"train", "validation"}
    # the test split's shards are as the data assets wrote them, with every test row, dropped-looking ones too
    assert [path.read_bytes() for path in test_shards] == test_bytes
    assert rows_in([str(p) for p in test_shards]) == sorted(test_rows)
