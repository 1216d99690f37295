"""The real-data path as a user walks it: only UTKFace configured to train on (by $AGENET_UTKFACE), FG-NET to score
as another source ($AGENET_FGNET), the full job through `dagster job execute` on real photos, then `agenet
predict` on real photos the job never saw. A labels table of one's own through the data assets."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import polars as pl
import pytest
from dagster import materialize

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.datasets.utkface import parse_name
from agenet_pipeline.pipeline.assets.labels import every_bin_present
from agenet_pipeline.pipeline.assets.manifests import appa_real_manifest, utkface_manifest
from agenet_pipeline.pipeline.definitions import DATA_CHECKS
from agenet_pipeline.pipeline.jobs import DATA_ASSETS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource
from agenet_pipeline_tests.conftest import execute_job, shared_data

REPOSITORY = Path(__file__).resolve().parents[2]
PER_BIN = 24  # photos of each age bin in the job's subset
HELD_BACK = 12
FGNET_PHOTOS = 40
MARGIN = 0.3  # not the default: the served model must crop with what the training crops were made with
CONFIG = f"""
ops:
  faces_utkface:
    config:
      fallback_whole_image: true
      margin: {MARGIN}
  age_model:
    config: &tiny
      input_size: 32
      filters: [8, 16, 32]
      dense_units: [32]
      max_epochs: 3
  preliminary_model:
    config: *tiny
"""


def real_subset(folder: Path) -> tuple[Path, list[Path]]:
    """PER_BIN UTKFace photos of each bin copied into `folder` (a dataset root of the user's), and HELD_BACK others."""
    source = shared_data("utkface_part1") / "UTKFace"
    by_bin: dict[int, list[Path]] = {}
    for path in sorted(source.glob("*.jpg")):
        labels = parse_name(path.name)
        if labels:
            by_bin.setdefault(int(SEED_BINS.index(labels["age"])), []).append(path)
    root = folder / "UTKFace"
    root.mkdir(parents=True)
    held_back = []
    for photos in by_bin.values():
        for path in photos[:PER_BIN]:
            shutil.copy(path, root / path.name)
        held_back += photos[PER_BIN : PER_BIN + 2]
    return root, held_back[:HELD_BACK]


def fgnet_subset(folder: Path) -> Path:
    """FGNET_PHOTOS real FG-NET photos, every FG-NET person's photos together, copied into `folder`."""
    photos = sorted((shared_data("fgnet") / "images").glob("*.JPG"))[:FGNET_PHOTOS]
    folder.mkdir(parents=True)
    for path in photos:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    root, held_back = real_subset(folder / "data")
    fgnet = fgnet_subset(folder / "data" / "FGNET")
    project = folder / "project"
    project.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", project / "dagster.yaml")
    execute_job(project, "full_job", CONFIG, {"AGENET_UTKFACE": str(root), "AGENET_FGNET": str(fgnet)})
    return project, root, held_back


@pytest.mark.slow
def test_only_the_configured_datasets_are_anywhere_and_fgnet_is_never_trained_on(real_run):
    project, root, _ = real_run
    home = project / ".agenet"
    assert not (home / "demo").exists()
    for dataset in ("appa_real", "imdb_wiki", "adience", "labels_table"):
        assert pl.read_parquet(home / "manifests" / f"{dataset}.parquet").is_empty()
        assert json.loads((home / "manifests" / f"{dataset}.json").read_text())["root"] is None
    manifest = pl.read_parquet(home / "manifests" / "utkface.parquet")
    assert manifest.height == PER_BIN * len(SEED_BINS)
    assert manifest["image_path"].str.starts_with(str(root)).all()
    splits = pl.read_parquet(home / "labels" / "data_splits.parquet")
    assert sorted(splits["dataset"].unique()) == ["fgnet", "utkface"]
    assert set(splits.filter(pl.col("dataset") == "fgnet")["split"]) <= {"evaluation", "rejected"}
    shards = {tuple(p.name.split("-")[:2]) for p in (home / "tfrecords").glob("*.tfrecord")}
    assert shards == {("train", "utkface"), ("validation", "utkface"), ("test", "utkface"), ("evaluation", "fgnet")}
    assert pl.read_parquet(home / "labels" / "imdb_cleaned.parquet").is_empty()
    assert not list(home.glob("tfrecords_cleaned/*.tfrecord"))


@pytest.mark.slow
def test_fgnet_is_scored_as_another_source_beside_the_constant_guess(real_run):
    project, _, _ = real_run
    report = (project / ".agenet" / "evaluation" / "age_model" / "report" / "report.md").read_text()
    assert "other source" in report and "FG-NET" in report and "MAE by age group" in report
    uri = f"sqlite:///{project / '.agenet' / 'mlflow.db'}"
    [version] = mlflow.MlflowClient(uri, registry_uri=uri).search_model_versions("name='agenet'")
    metrics = mlflow.MlflowClient(uri).get_run(version.run_id).data.metrics
    scored = pl.read_parquet(project / ".agenet" / "evaluation" / "age_model" / "report" / "predictions.parquet")
    fgnet = scored.filter(pl.col("split") == "evaluation")
    assert fgnet.height > FGNET_PHOTOS * 0.9 and set(fgnet["dataset"]) == {"fgnet"}
    mae = (fgnet["predicted_age"] - fgnet["age"]).abs().mean()
    assert metrics["eval_evaluation_fgnet_mae"] == pytest.approx(mae)
    assert metrics["eval_evaluation_fgnet_mae_constant_guess"] > 0
    assert "eval_evaluation_fgnet_mae_0_12" in metrics


@pytest.mark.slow
def test_the_version_says_it_is_real_and_crops_as_training_did(real_run):
    project, _, _ = real_run
    uri = f"sqlite:///{project / '.agenet' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    [version] = client.search_model_versions("name='agenet'")
    assert version.tags["data.synthetic"] == "false"
    assert version.tags["data.datasets"] == f"utkface={PER_BIN * len(SEED_BINS)}"
    run = client.get_run(version.run_id)
    assert run.data.tags["data.synthetic"] == "false"
    assert float(run.data.params["faces.margin"]) == MARGIN
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        config = mlflow.models.get_model_info(version.source).flavors["python_function"]["config"]
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])
    assert config["faces"]["margin"] == MARGIN and config["faces"]["fallback_whole_image"] is True


@pytest.mark.slow
def test_agenet_predict_answers_each_held_back_photo(real_run, tmp_path):
    project, _, held_back = real_run
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in held_back:
        shutil.copy(path, photos / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENET_", "MLFLOW_"))}
    output = tmp_path / "ages.csv"
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "agenet"), "predict", str(photos), "--aligned", "--output", str(output)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "synthetic" not in completed.stderr
    table = pl.read_csv(output)
    assert table.height == len(held_back) and (table["status"] == "ok").all()
    assert sorted(Path(f).name for f in table["file"]) == sorted(p.name for p in held_back)


def test_a_configured_root_that_does_not_exist_stops_at_its_manifest(tmp_path):
    missing = tmp_path / "nowhere"
    result = materialize(
        [utkface_manifest],
        resources={
            "home": AgeNetHome(path=str(tmp_path / "home")),
            "dataset_roots": DatasetRoots(utkface=str(missing)),
        },
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "utkface" in str(failure.step_failure_data.error) and str(missing) in str(failure.step_failure_data.error)


def test_a_configured_root_without_a_usable_photo_stops_at_its_manifest(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no photos here")
    (empty / "25_0_.jpg.chip.jpg").write_bytes(b"a malformed name, not a photo")
    result = materialize(
        [utkface_manifest],
        resources={"home": AgeNetHome(path=str(tmp_path / "home")), "dataset_roots": DatasetRoots(utkface=str(empty))},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.error)
    assert "utkface" in message and str(empty) in message and "1 malformed_name" in message


def test_a_dataset_left_out_is_absent_and_the_demo_is_not_written(tmp_path, monkeypatch):
    root = tmp_path / "utk"
    root.mkdir()
    source = sorted((shared_data("utkface_part1") / "UTKFace").glob("*.jpg"))[:5]
    for path in source:
        shutil.copy(path, root / path.name)
    monkeypatch.setenv("AGENET_UTKFACE", str(root))
    home = tmp_path / "home"
    result = materialize(
        [utkface_manifest, appa_real_manifest],
        resources={"home": AgeNetHome(path=str(home)), "dataset_roots": DatasetRoots()},
    )
    assert result.success
    assert pl.read_parquet(home / "manifests" / "utkface.parquet").height == 5
    assert pl.read_parquet(home / "manifests" / "appa_real.parquet").is_empty()
    assert not (home / "demo").exists()


def test_a_labels_table_of_ones_own_flows_into_the_training_shards(tmp_path):
    """Real photos listed in a CSV of one's own (path,age,gender; a bad row among them), the only dataset set: its
    rows reach train, validation and test shards, its bad row is rejected with its reason, no other dataset is read."""
    photos = tmp_path / "mine" / "photos"
    photos.mkdir(parents=True)
    lines = ["path,age,gender"]
    for path in sorted((shared_data("utkface_part1") / "UTKFace").glob("*.jpg"))[::97][:60]:
        labels = parse_name(path.name)
        shutil.copy(path, photos / path.name)
        lines.append(f"photos/{path.name},{labels['age']:g},{labels['gender']}")
    lines.append("photos/not_there.jpg,30,male")
    table = tmp_path / "mine" / "ages.csv"
    table.write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    result = materialize(
        [*DATA_ASSETS, *(c for c in DATA_CHECKS if c is not every_bin_present)],
        resources={
            "home": AgeNetHome(path=str(home)),
            "dataset_roots": DatasetRoots(labels_table=str(table)),
            "face_detector": FaceDetectorResource(),
        },
    )
    assert result.success
    assert not (home / "demo").exists()
    manifest = pl.read_parquet(home / "manifests" / "labels_table.parquet")
    assert manifest.height == 61 and manifest.filter(pl.col("status") != "ok")["status"].to_list() == ["missing_file"]
    splits = pl.read_parquet(home / "labels" / "data_splits.parquet")
    assert splits["dataset"].unique().to_list() == ["labels_table"]
    shards = {tuple(p.name.split("-")[:2]) for p in (home / "tfrecords").glob("*.tfrecord")}
    assert shards == {("train", "labels_table"), ("validation", "labels_table"), ("test", "labels_table")}
    assert all(e.passed for e in result.get_asset_check_evaluations())
