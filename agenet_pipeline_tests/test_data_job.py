"""The data job as a user runs it: `dagster job execute` with the repository's dagster.yaml."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_data_job_from_the_command_line_persists_its_run(tmp_path, monkeypatch):
    shutil.copy(REPOSITORY / "dagster.yaml", tmp_path / "dagster.yaml")
    (tmp_path / "small_demo.yaml").write_text("resources:\n  dataset_roots:\n    config:\n      demo_images: 60\n")
    env = {k: v for k, v in os.environ.items() if k not in ("AGENET_HOME", "DAGSTER_HOME")}
    dagster = Path(sys.executable).parent / "dagster"
    completed = subprocess.run(
        [str(dagster), "job", "execute", "-m", "agenet_pipeline", "-j", "data_job", "-c", "small_demo.yaml"],
        cwd=tmp_path, env={**env, "DAGSTER_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    assert (tmp_path / ".agenet" / "dagster" / "storage").is_dir()
    assert {p.name.split("-")[0] for p in (tmp_path / ".agenet" / "tfrecords").iterdir()} == {
        "evaluation", "test", "train", "validation"}
    monkeypatch.chdir(tmp_path)  # dagster.yaml's storage paths are relative to the working directory
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        [run] = instance.get_runs()
        assert run.job_name == "data_job" and run.status == DagsterRunStatus.SUCCESS
        materialized = {key.path[0] for key in instance.get_asset_keys() if instance.get_latest_materialization_event(key)}
    assert {"utkface_manifest", "faces_imdb_wiki", "age_labels", "data_splits", "training_shards"} <= materialized
