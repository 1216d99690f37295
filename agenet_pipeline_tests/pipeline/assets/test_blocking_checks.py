"""The data checks block: each fails on data made to break it, and a failed check stops the assets after it in
the same run, training included."""

import shutil

import polars as pl
import pytest
from dagster import AssetSelection, materialize

from agenet_pipeline.core.home import Home
from agenet_pipeline.pipeline.assets import faces, labels
from agenet_pipeline.pipeline.definitions import DATA_CHECKS
from agenet_pipeline.pipeline.jobs import DATA_ASSETS, TRAINING_ASSETS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource, MLflowResource

# 100 drawn faces per dataset: the smallest demo measured to have every bin in train, validation and test.
DEMO_IMAGES = 100
# Should a check not block, the training that follows it stays cheap.
TINY = {"input_size": 32, "filters": [8, 16], "dense_units": [16], "max_epochs": 1}
DOWNSTREAM = [*DATA_ASSETS, *DATA_CHECKS, *TRAINING_ASSETS]


def resources(home, demo_images=DEMO_IMAGES):
    return {
        "home": AgeNetHome(path=str(home)),
        "dataset_roots": DatasetRoots(demo_images=demo_images),
        "face_detector": FaceDetectorResource(),
        "mlflow": MLflowResource(),
    }


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """The data assets of a small demo, every check passing."""
    home = tmp_path_factory.mktemp("home")
    result = materialize([*DATA_ASSETS, *DATA_CHECKS], resources=resources(home))
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    return home


@pytest.fixture
def home(data_home, tmp_path) -> Home:
    """A copy of the data home for one test to break."""
    shutil.copytree(data_home, tmp_path / "home")
    return Home.at(tmp_path / "home")


def rewrite(path, change) -> None:
    pl.read_parquet(path).pipe(change).write_parquet(path)


def usable_age_250(frame: pl.DataFrame) -> pl.DataFrame:
    first_usable = pl.int_range(pl.len()) == frame["status"].index_of("ok")
    return frame.with_columns(pl.when(first_usable).then(250.0).otherwise(pl.col("age")).alias("age"))


def validation_without_bin_0(frame: pl.DataFrame) -> pl.DataFrame:
    moved = (pl.col("split") == "validation") & (pl.col("bin") == 0)
    return frame.with_columns(pl.when(moved).then(pl.lit("train")).otherwise(pl.col("split")).alias("split"))


def a_test_face_in_a_training_group(frame: pl.DataFrame) -> pl.DataFrame:
    group = frame.filter(pl.col("split") == "train")["split_group"][0]
    first_test = pl.int_range(pl.len()) == frame["split"].index_of("test")
    return frame.with_columns(
        pl.when(first_test).then(pl.lit(group)).otherwise(pl.col("split_group")).alias("split_group")
    )


def one_row_lost(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.head(frame.height - 1)


def labels_file(home: Home):
    return home.labels_path


def splits_file(home: Home):
    return home.splits_path


def utkface_manifest_file(home: Home):
    return home.manifest_path("utkface")


[UTKFACE_ROWS_RECONCILE] = [c for c in faces.face_checks if c.check_key.asset_key.path == ["faces_utkface"]]
# check, the file broken, how, and an asset after it that must not run
BREAKS = {
    "labels_in_range": (labels.labels_in_range, labels_file, usable_age_250, "data_splits"),
    "every_bin_present": (labels.every_bin_present, splits_file, validation_without_bin_0, "training_shards"),
    "no_split_leakage": (labels.no_split_leakage, splits_file, a_test_face_in_a_training_group, "training_shards"),
    "rows_reconcile on data_splits": (labels.rows_reconcile, splits_file, one_row_lost, "training_shards"),
    "rows_reconcile on faces_utkface": (UTKFACE_ROWS_RECONCILE, utkface_manifest_file, one_row_lost, "age_labels"),
}


def steps_started(result) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


@pytest.mark.parametrize(("check", "path_of", "breaking", "downstream"), BREAKS.values(), ids=BREAKS.keys())
def test_a_check_fails_on_broken_data_and_stops_the_asset_after_it(home, check, path_of, breaking, downstream):
    rewrite(path_of(home), breaking)
    result = materialize(
        DOWNSTREAM,
        resources=resources(home.root),
        selection=AssetSelection.checks(check) | AssetSelection.assets(downstream),
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.asset_check_key == check.check_key and not evaluation.passed
    assert not result.success and downstream not in steps_started(result)


def test_a_detection_rate_under_the_floor_fails_and_stops_the_labels(home):
    """The demo's UTKFace photos include one without a face, so no floor over the rate it reaches is met."""
    result = materialize(
        DOWNSTREAM,
        resources=resources(home.root),
        selection=AssetSelection.assets("faces_utkface", "age_labels"),
        run_config={"ops": {"faces_utkface": {"config": {"min_detection_rate": 0.999}}}},
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "detection_rate_above_floor" and not evaluation.passed
    assert evaluation.metadata["detection rate"].value < 0.999
    assert not result.success and "age_labels" not in steps_started(result)


def test_a_failed_check_stops_training_in_the_same_run(tmp_path):
    """Twenty drawn faces per dataset are too few for every bin to reach the validation split: every_bin_present
    fails, and neither the shards nor any model are made."""
    result = materialize(
        DOWNSTREAM,
        resources=resources(tmp_path, demo_images=20),
        run_config={"ops": {name: {"config": TINY} for name in ("preliminary_model", "age_model")}},
        raise_on_error=False,
    )
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"every_bin_present"}
    materialized = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert "data_splits" in materialized
    assert not {"training_shards", "preliminary_model", "imdb_cleaned", "age_model"} & materialized
    assert not steps_started(result) & {"training_shards", "preliminary_model", "imdb_cleaned", "age_model"}
    assert not Home.at(tmp_path).model_path("preliminary_model").exists()
