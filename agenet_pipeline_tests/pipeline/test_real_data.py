"""The real-data path as a user walks it: only UTKFace configured (by $AGENET_UTKFACE), the full job through
`dagster job execute` on real photos, then `agenet predict` on real photos the job never saw."""

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
from agenet_pipeline.pipeline.assets.manifests import appa_real_manifest, utkface_manifest
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots
from agenet_pipeline_tests.conftest import execute_job, shared_data

REPOSITORY = Path(__file__).resolve().parents[2]
PER_BIN = 24  # photos of each age bin in the job's subset
HELD_BACK = 12
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


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    root, held_back = real_subset(folder / "data")
    project = folder / "project"
    project.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", project / "dagster.yaml")
    execute_job(project, "full_job", CONFIG, {"AGENET_UTKFACE": str(root)})
    return project, root, held_back


@pytest.mark.slow
def test_only_the_configured_dataset_is_anywhere(real_run):
    project, root, _ = real_run
    home = project / ".agenet"
    assert not (home / "demo").exists()
    for dataset in ("appa_real", "imdb_wiki", "adience"):
        assert pl.read_parquet(home / "manifests" / f"{dataset}.parquet").is_empty()
        assert json.loads((home / "manifests" / f"{dataset}.json").read_text())["root"] is None
    manifest = pl.read_parquet(home / "manifests" / "utkface.parquet")
    assert manifest.height == PER_BIN * len(SEED_BINS)
    assert manifest["image_path"].str.starts_with(str(root)).all()
    splits = pl.read_parquet(home / "labels" / "data_splits.parquet")
    assert splits["dataset"].unique().to_list() == ["utkface"]
    assert {p.name.split("-")[1] for p in (home / "tfrecords").glob("*.tfrecord")} == {"utkface"}
    assert pl.read_parquet(home / "labels" / "imdb_cleaned.parquet").is_empty()
    assert not list(home.glob("tfrecords_cleaned/*.tfrecord"))


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
