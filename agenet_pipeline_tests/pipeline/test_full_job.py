"""The jobs as a user runs them: `dagster job execute` with the repository's dagster.yaml, then MLflow."""

import shutil
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline_tests.conftest import execute_job

REPOSITORY = Path(__file__).resolve().parents[2]
SMALL = """
resources:
  dataset_roots:
    config:
      demo_images: 60
ops:
  preliminary_model:
    config: &tiny
      input_size: 32
      filters: [8, 16]
      dense_units: [16]
      max_epochs: 2
  age_model:
    config: *tiny
"""


SWEEP = """
ops:
  plan_trials:
    config:
      method: grid
      learning_rate: [0.001, 1.0e+12]
      filters: [[8, 16]]
      dense_units: [[16]]
      input_size: 32
      max_epochs: 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A working directory with the repository's dagster.yaml, after one run of the full job."""
    folder = tmp_path_factory.mktemp("project")
    shutil.copy(REPOSITORY / "dagster.yaml", folder / "dagster.yaml")
    output = execute_job(folder, "full_job", SMALL)
    assert "SYNTHETIC demo copy" in output  # the demo says what it is
    return folder


@pytest.mark.slow
def test_the_run_persists_with_every_asset(project, monkeypatch):
    monkeypatch.chdir(project)  # dagster.yaml keeps the instance under the home: .agenet in the working directory
    monkeypatch.delenv("AGENET_HOME", raising=False)
    with DagsterInstance.from_config(str(project)) as instance:
        [run] = instance.get_runs(filters=RunsFilter(job_name="full_job"))
        assert run.status == DagsterRunStatus.SUCCESS
        materialized = {
            key.path[0] for key in instance.get_asset_keys() if instance.get_latest_materialization_event(key)
        }
    assert {
        "utkface_manifest",
        "faces_imdb_wiki",
        "data_splits",
        "training_shards",
        "preliminary_model",
        "imdb_cleaned",
        "age_model",
    } <= materialized
    assert {p.name.split("-")[0] for p in (project / ".agenet" / "tfrecords").iterdir()} == {
        "evaluation",
        "test",
        "train",
        "validation",
    }


@pytest.mark.slow
def test_the_age_model_is_a_registered_version_with_its_run(project):
    uri = f"sqlite:///{project / '.agenet' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(uri)
    [version] = client.search_model_versions("name='agenet'")
    run = client.get_run(version.run_id)
    assert run.data.tags["dagster.asset"] == "age_model" and run.data.tags["dagster.run_id"]
    assert run.data.tags["data.synthetic"] == version.tags["data.synthetic"] == "true"  # the demo's drawn faces
    assert version.tags["data.datasets"].startswith("appa_real=")
    assert {"model.filters", "training.learning_rate", "data.train.utkface.hash"} <= set(run.data.params)
    assert {"test_exact_accuracy", "test_mae_years", "val_loss"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2  # one point per epoch
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "training_curves.png" in artifacts
    assert run.info.artifact_uri.startswith(str(project / ".agenet" / "mlartifacts"))
    assert not (project / "mlruns").exists() and not (project / "mlflow.db").exists()
    logged = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    ids = {model.name: model.model_id for model in logged}
    assert set(ids) == {"model", "serving_model"} and version.source == f"models:/{ids['serving_model']}"
    assert mlflow.keras.load_model(f"models:/{ids['model']}").output_shape == (None, 10)
    served = mlflow.pyfunc.load_model(f"models:/agenet/{version.version}")  # photos in, a row per face out
    photo = cv2.imencode(".jpg", draw_face(30.0, np.random.default_rng(0), 256))[1].tobytes()
    answer = served.predict(pandas.DataFrame({"image": [photo]}))
    assert answer["status"].tolist() == ["ok"] and 0 <= answer["age"][0] <= 120
    preliminary = client.search_runs([run.info.experiment_id], "tags.`dagster.asset` = 'preliminary_model'")
    assert len(preliminary) == 1


@pytest.mark.slow
def test_sweep_trials_are_child_runs_and_the_best_is_named(project):
    execute_job(project, "sweep_job", SWEEP)  # the second trial's learning rate diverges
    uri = f"sqlite:///{project / '.agenet' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("agenet")
    [parent] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'sweep'")
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(child.info.status for child in children) == ["FAILED", "FINISHED"]
    assert parent.info.status == "FINISHED" and parent.data.metrics["failed_trials"] == 1
    [best] = [child for child in children if child.info.status == "FINISHED"]
    assert parent.data.tags["best_trial_run_id"] == best.info.run_id
    assert "0.001" in parent.data.params["space.learning_rate"]
