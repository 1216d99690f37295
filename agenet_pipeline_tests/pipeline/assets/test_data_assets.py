import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import materialize

from agenet_pipeline.core.datasets import PIPELINE_DATASETS
from agenet_pipeline.core.home import Home
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.storage import face_settings_of, scan_faces
from agenet_pipeline.pipeline.definitions import DATA_CHECKS
from agenet_pipeline.pipeline.jobs import DATA_ASSETS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource

pytestmark = pytest.mark.slow
UTKFACE_FACES = [a for a in DATA_ASSETS if a.key.path[0] in ("utkface_manifest", "faces_utkface")]


def resources(home, **roots):
    return {
        "home": AgeNetHome(path=str(home)),
        "dataset_roots": DatasetRoots(**roots),
        "face_detector": FaceDetectorResource(),
    }


def all_assets_and_checks():
    return [*DATA_ASSETS, *DATA_CHECKS]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    result = materialize(all_assets_and_checks(), resources=resources(home, demo_images=120))
    assert result.success
    return home, result


def metadata(result, asset):
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def test_every_check_passes(demo_run):
    _, result = demo_run
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        "detection_rate_above_floor",
        "labels_in_range",
        "no_split_leakage",
        "every_bin_present",
        "rows_reconcile",
    }
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]


def test_every_manifest_row_appears_once_in_the_faces(demo_run):
    home, _ = demo_run
    for dataset in PIPELINE_DATASETS:
        manifest = pl.read_parquet(Home.at(home).manifest_path(dataset))
        faces = scan_faces(Home.at(home).faces_folder(dataset), ["row"]).collect()
        assert faces["row"].to_list() == manifest["row"].to_list()


def test_rejects_are_counted_with_their_reason(demo_run):
    _, result = demo_run
    utkface = metadata(result, "utkface_manifest")
    assert utkface["synthetic demo data"] is True
    # 120 drawn faces plus a damaged file and a faceless photo, which only the face stage can tell apart;
    # rejected by the reader: a malformed name and an age of 250.
    assert utkface["usable rows"] == 122 and utkface["rejected rows"] == 2
    assert "malformed_name" in utkface["rows by status"] and "label_out_of_range" in utkface["rows by status"]
    faces = metadata(result, "faces_utkface")
    outcomes = faces["rows by outcome"]
    assert "unreadable" in outcomes and ("no_face" in outcomes or "low_score" in outcomes)
    assert 0.9 <= faces["detection rate"] <= 1.0
    assert faces["preview"].startswith("![preview](data:image/png;base64,")
    adience = metadata(result, "adience_manifest")
    assert adience["listed faces without a file"] >= 1


def test_splits_and_shards_account_for_every_usable_face(demo_run):
    home, result = demo_run
    splits = pl.read_parquet(Home.at(home).splits_path)
    usable = splits.filter(pl.col("status") == "ok")
    assert set(usable["split"]) <= {"train", "validation", "test", "evaluation", "held_out"}
    assert set(splits.filter(pl.col("status") != "ok")["split"]) == {"rejected"}
    assert set(usable.filter(pl.col("dataset") == "adience")["split"]) == {"evaluation"}
    shards = metadata(result, "training_shards")
    assert shards["dagster/row_count"] == usable.filter(pl.col("split") != "held_out").height


def test_tfrecords_hold_decodable_crops_with_labels(demo_run):
    import tensorflow as tf

    from agenet_pipeline.core.datasets import DATASETS
    from agenet_pipeline.model.records import feature_spec

    home, _ = demo_run
    splits = pl.read_parquet(Home.at(home).splits_path)
    files = sorted(str(p) for p in Home.at(home).shards_folder.glob("train-*.tfrecord"))
    assert {Path(f).name.split("-")[1] for f in files} == {"utkface", "appa_real", "imdb_wiki"}
    examples = [tf.io.parse_single_example(record, feature_spec()) for record in tf.data.TFRecordDataset(files)]
    assert len(examples) == splits.filter(pl.col("split") == "train").height
    image = tf.io.decode_jpeg(examples[0]["image"])
    assert tuple(image.shape) == (256, 256, 3)
    assert {int(e["dataset"]) for e in examples} <= {DATASETS[d].id for d in ("utkface", "appa_real", "imdb_wiki")}
    assert all(0 <= int(e["bin"]) < 10 for e in examples)
    # Written in a scrambled order, not in the source's (file name, so age) order.
    rows = [int(e["row"]) for e in examples if int(e["dataset"]) == DATASETS["utkface"].id]
    assert len(rows) > 20 and rows != sorted(rows)


def test_rematerialising_reuses_the_face_shards(demo_run):
    home, _ = demo_run
    result = materialize(
        UTKFACE_FACES,
        resources=resources(home, demo_images=120),
    )
    assert metadata(result, "faces_utkface")["shards reused from an earlier run"] == 1
    assert metadata(result, "faces_utkface")["photos processed"] == 0


def test_a_changed_context_redoes_the_crops_and_is_recorded(demo_run, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(demo_run[0], home)
    folder = Home.at(home).faces_folder("utkface")
    assert face_settings_of(folder) == FaceSettings()
    before = scan_faces(folder, ["row", "crop_jpeg"]).collect()
    result = materialize(
        UTKFACE_FACES,
        resources=resources(home, demo_images=120),
        run_config={"ops": {"faces_utkface": {"config": {"context": None}}}},
    )
    assert metadata(result, "faces_utkface")["photos processed"] > 0
    assert face_settings_of(folder).context is None
    after = scan_faces(folder, ["row", "crop_jpeg"]).collect()
    assert after["row"].to_list() == before["row"].to_list()
    changed = sum(a != b for a, b in zip(after["crop_jpeg"], before["crop_jpeg"], strict=True) if a is not None)
    assert changed >= 0.9 * after["crop_jpeg"].drop_nulls().len()


def test_real_utkface_folder(tmp_path, utkface_part1):
    result = materialize(UTKFACE_FACES, resources=resources(tmp_path, utkface=str(utkface_part1)))
    manifest = metadata(result, "utkface_manifest")
    assert manifest["dagster/row_count"] == 9780 and manifest["rejected rows"] == 1
    assert manifest["synthetic demo data"] is False
    faces = metadata(result, "faces_utkface")
    assert faces["dagster/row_count"] == 9780
    assert faces["detection rate"] > 0.95
    assert "malformed_name" in faces["rows by outcome"]
