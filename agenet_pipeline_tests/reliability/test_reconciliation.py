"""Row accounting: manifest rows = face rows (ok + each reason); face rows = the splits' rows, per dataset."""

import polars as pl
import pyarrow.parquet as pq
import pytest
from dagster import materialize

from agenet_pipeline.core.datasets import PIPELINE_DATASETS
from agenet_pipeline.datasets.reconciliation import reconcile_faces, reconcile_splits
from agenet_pipeline.pipeline.assets.labels import every_bin_present
from agenet_pipeline.pipeline.definitions import DATA_CHECKS
from agenet_pipeline.pipeline.jobs import DATA_ASSETS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource

MANIFEST = pl.DataFrame({"row": [0, 1, 2, 3], "status": ["ok", "ok", "ok", "malformed_name"]})
FACES = pl.DataFrame({"row": [0, 1, 2, 3], "status": ["ok", "no_face", "unreadable", "malformed_name"]})


def test_faces_that_account_for_every_manifest_row():
    result = reconcile_faces(MANIFEST, FACES)

    assert result.passed
    assert result.statement == "4 manifest rows = 4 face rows = 1 ok + 1 malformed_name + 1 no_face + 1 unreadable"


@pytest.mark.parametrize(
    ("faces", "problem"),
    [
        (FACES.head(3), "1 rows lost"),
        (pl.concat([FACES, FACES.tail(1)]), "1 rows duplicated"),
        (FACES.with_columns(pl.col("row") + 1), "not in the input"),
        (FACES.with_columns(pl.lit("ok").alias("status")), "lost their reason"),
    ],
    ids=["lost", "duplicated", "unknown row", "reason dropped"],
)
def test_faces_that_do_not_add_up(faces, problem):
    result = reconcile_faces(MANIFEST, faces)

    assert not result.passed
    assert any(problem in p for p in result.problems), result.problems


FACE_ROWS = pl.DataFrame(
    {
        "dataset": ["utkface"] * 4 + ["adience"] * 2,
        "row": [0, 1, 2, 3, 0, 1],
        "status": ["ok"] * 3 + ["no_face"] * 2 + ["ok"],
    }
)
SPLITS = FACE_ROWS.with_columns(
    pl.Series("split", ["train", "test", "held_out", "rejected", "rejected", "evaluation"]),
)


def test_splits_that_account_for_every_face():
    result = reconcile_splits(FACE_ROWS, SPLITS)

    assert result.passed, result.problems
    assert result.statement == (
        "adience: 2 faces = 1 evaluation + 1 rejected; utkface: 4 faces = 1 train + 1 test + 1 held_out + 1 rejected"
    )
    assert result.table.filter(pl.col("dataset") == "utkface").select("faces", "sum").row(0) == (4, 4)


@pytest.mark.parametrize(
    ("splits", "problem"),
    [
        (SPLITS.head(5), "1 rows lost"),
        (pl.concat([SPLITS, SPLITS.head(1)]), "utkface: 4 face rows but 5 rows"),
        (SPLITS.with_columns(pl.lit("train").alias("split")), "placed against their status"),
        (SPLITS.with_columns(pl.col("split").replace("test", "tset")), "unknown split(s) tset"),
    ],
    ids=["lost", "duplicated", "rejected placed", "unknown split"],
)
def test_splits_that_do_not_add_up(splits, problem):
    result = reconcile_splits(FACE_ROWS, splits)

    assert not result.passed
    assert any(problem in p for p in result.problems), result.problems


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    """The data assets on a small demo, up to the splits, with their checks but every_bin_present: 20 faces a
    dataset are too few for every bin in every split, and that check blocks."""
    home = tmp_path_factory.mktemp("home")
    upstream_of_shards = [a for a in DATA_ASSETS if a.key.path[0] != "training_shards"]
    result = materialize(
        [*upstream_of_shards, *(c for c in DATA_CHECKS if c is not every_bin_present)],
        resources={
            "home": AgeNetHome(path=str(home)),
            "dataset_roots": DatasetRoots(demo_images=20),
            "face_detector": FaceDetectorResource(),
        },
    )
    assert result.success
    return home, result


def test_rows_reconcile_after_a_run_and_say_so(data_run):
    _, result = data_run
    checks = {
        (e.asset_key.path[0], e.check_name): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "rows_reconcile"
    }

    assert set(checks) == {(f"faces_{d}", "rows_reconcile") for d in PIPELINE_DATASETS} | {
        ("data_splits", "rows_reconcile")
    }
    assert all(e.passed for e in checks.values()), [e.metadata for e in checks.values() if not e.passed]
    faces = checks[("faces_utkface", "rows_reconcile")].metadata["rows"].value
    assert faces.startswith("24 manifest rows = 24 face rows = ") and "unreadable" in faces
    splits = checks[("data_splits", "rows_reconcile")].metadata["rows"].value
    assert "utkface: 24 faces = " in splits and "adience: " in splits and "evaluation" in splits


def test_every_written_file_is_whole_and_no_temporary_file_is_left(data_run):
    home, _ = data_run
    written = [p for p in home.rglob("*") if p.is_file() and "demo" not in p.relative_to(home).parts]

    assert not [p for p in written if p.name.startswith(".") or p.suffix == ".tmp"]
    parquet = [p for p in written if p.suffix == ".parquet"]
    assert len(parquet) >= 10
    for path in parquet:
        pq.read_metadata(path)
