import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agenet_pipeline.datasets.splits import assign_splits, leaks
from agenet_pipeline_tests.formats import label_rows as rows
from agenet_pipeline_tests.formats import labels

PLACED = ("train", "validation", "test", "evaluation")


def independent(n: int, dataset: str = "utkface") -> list[tuple]:
    return [(dataset, f"person{i}", f"crop{i}") for i in range(n)]


def split_of(splits: pl.DataFrame, dataset: str, row: int) -> str:
    return splits.filter((pl.col("dataset") == dataset) & (pl.col("row") == row))["split"].item()


def values_in_several_splits(splits: pl.DataFrame, key: str) -> list[str]:
    """The direct check beside `leaks`: key values whose placed rows are in more than one split."""
    placed = splits.filter(pl.col("split").is_in(PLACED) & pl.col(key).is_not_null())
    return placed.group_by(key).agg(pl.col("split").n_unique()).filter(pl.col("split") > 1)[key].to_list()


def test_same_seed_same_splits_other_seed_other_splits():
    table = labels(independent(200))

    first = assign_splits(table, seed=7)

    assert first.equals(assign_splits(table, seed=7))
    assert first["split"].to_list() != assign_splits(table, seed=8)["split"].to_list()


def test_a_group_keeps_its_split_when_unrelated_rows_are_added():
    table = labels(independent(100))
    grown = labels(independent(100) + [("appa_real", f"other{i}", f"other_crop{i}") for i in range(50)])

    before = assign_splits(table)
    after = assign_splits(grown).filter(pl.col("dataset") == "utkface")

    assert after["split"].to_list() == before["split"].to_list()


@pytest.mark.parametrize("seed", [0, 1])
def test_shares_over_many_independent_groups(seed):
    splits = assign_splits(labels(independent(4000)), seed=seed)
    share = splits["split"].value_counts(normalize=True)
    shares = dict(zip(share["split"], share["proportion"]))

    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert shares["validation"] == pytest.approx(0.8 * 0.2, abs=0.03)
    assert shares["train"] == pytest.approx(0.8 * 0.8, abs=0.03)


def test_rows_of_one_person_stay_in_one_split():
    table = labels([("imdb_wiki", f"imdb:nm{p:07d}", f"crop{p}-{k}") for p in range(60) for k in range(5)])

    splits = assign_splits(table)

    assert values_in_several_splits(splits, "split_group") == []
    assert leaks(splits).is_empty()
    assert splits["split"].n_unique() == 3  # the persons themselves are spread over train, validation and test


def test_identical_crops_across_datasets_stay_in_one_split():
    table = labels(
        [("utkface", f"utk{i}", f"same{i}") for i in range(100)]
        + [("appa_real", f"appa{i}", f"same{i}") for i in range(100)]
    )

    splits = assign_splits(table)

    assert values_in_several_splits(splits, "crop_sha256") == []
    assert leaks(splits).is_empty()
    assert all(split_of(splits, "utkface", i) == split_of(splits, "appa_real", i) for i in range(100))


def test_a_chain_of_shared_person_then_shared_crop_stays_together():
    # A and B are one person; B and C are the same crop; so A and C must share a split although they share no key.
    chains = [
        row
        for i in range(60)
        for row in (("imdb_wiki", f"p{i}", f"a{i}"), ("imdb_wiki", f"p{i}", f"b{i}"), ("utkface", f"q{i}", f"b{i}"))
    ]
    splits = assign_splits(labels(chains))

    for i in range(60):
        assert (
            split_of(splits, "imdb_wiki", 2 * i)
            == split_of(splits, "imdb_wiki", 2 * i + 1)
            == split_of(splits, "utkface", i)
        )
    assert leaks(splits).is_empty()


def test_adience_is_for_evaluation_and_rows_tied_to_it_are_held_out():
    table = labels(
        [
            ("adience", "adience:u1", "c1"),
            ("adience", "adience:u2", "c2"),
            ("utkface", "sha256:x", "c1"),  # the same crop as an Adience face
            ("imdb_wiki", "imdb:nm1", "c3"),
            ("utkface", "sha256:y", "c3"),  # tied to an IMDB row only
        ]
    )

    splits = assign_splits(table)

    assert splits["split"].to_list()[:3] == ["evaluation", "evaluation", "held_out"]
    assert split_of(splits, "imdb_wiki", 0) == split_of(splits, "utkface", 1) in ("train", "validation", "test")
    assert leaks(splits).is_empty()


def test_a_person_tied_to_adience_is_held_out_entirely():
    table = labels([("adience", "adience:u1", "c1"), ("imdb_wiki", "imdb:nm1", "c1"), ("imdb_wiki", "imdb:nm1", "c2")])

    assert assign_splits(table)["split"].to_list() == ["evaluation", "held_out", "held_out"]


def test_other_evaluation_datasets_can_be_named():
    table = labels([("appa_real", "a", "c1"), ("utkface", "u", "c1"), ("adience", "adience:u", "c2")])

    assert assign_splits(table, evaluation_datasets=("appa_real",))["split"].to_list()[:2] == ["evaluation", "held_out"]


def test_rejected_rows_are_rejected_and_tie_nothing():
    table = labels(
        [
            ("utkface", "u0", "c0", "no_face"),
            ("adience", "adience:u", "c1", "missing_file"),
            ("utkface", "u1", "c1"),
            ("utkface", "u0", "c2"),
        ]
    )

    splits = assign_splits(table)

    assert splits["split"].to_list()[:2] == ["rejected", "rejected"]
    # Row 2's crop matches only a rejected Adience row, and row 3's person only a rejected row: both are placed.
    assert set(splits["split"].to_list()[2:]) <= {"train", "validation", "test"}


def test_every_input_row_comes_out_once_with_its_columns():
    table = labels(
        independent(50)
        + [("adience", f"adience:{i}", f"ac{i}") for i in range(10)]
        + [("appa_real", None, None, "missing_file")] * 5
    )

    splits = assign_splits(table)

    assert splits.columns == [*table.columns, "split"]
    assert splits.drop("split").equals(table)


def test_leaks_reports_a_value_found_in_two_splits():
    placed = labels([("utkface", "g", "c1"), ("utkface", "g", "c2"), ("utkface", "h", "c2")]).with_columns(
        pl.Series("split", ["train", "test", "held_out"])
    )

    assert leaks(placed).rows() == [("split_group", "g", "test, train")]


@pytest.mark.parametrize(("test", "validation"), [(0, 0.2), (1, 0.2), (0.2, 1), (0.2, -0.1)])
def test_fractions_out_of_range_are_refused(test, validation):
    with pytest.raises(ValueError, match="split fractions"):
        assign_splits(labels(independent(3)), test_fraction=test, validation_fraction=validation)


@settings(max_examples=150, deadline=None)
@given(rows, st.integers(0, 3))
def test_random_tables_never_leak_and_keep_every_row(table_rows, seed):
    table = labels(table_rows)

    splits = assign_splits(table, seed=seed)

    assert leaks(splits).is_empty()
    assert values_in_several_splits(splits, "split_group") == values_in_several_splits(splits, "crop_sha256") == []
    assert splits.drop("split").equals(table)
    assert (splits["split"] == "rejected").to_list() == (splits["status"] != "ok").to_list()
