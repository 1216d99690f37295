"""The training asset on the JAX backend (CPU build), as on a GPU worker without TensorFlow: real UTKFace crops
made by the data assets (TensorFlow, in this process), then `age_model` through `dagster asset materialize` with
KERAS_BACKEND=jax, killed (SIGKILL) after its first checkpoint, rerun to resume and register; the registered
served model answers a real photo here, on TensorFlow."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.datasets.utkface import parse_name
from agenet_pipeline.pipeline.jobs import DATA_ASSETS, TRAINING_ASSETS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource, MLflowResource
from agenet_pipeline_tests.conftest import shared_data

pytest.importorskip("jax", reason="the JAX backend is not installed (the test extra installs its CPU build)")

REPOSITORY = Path(__file__).resolve().parents[2]
PER_BIN = 8
EPOCHS = 12  # enough that the kill lands before the last epoch; early stopping is set off
CONFIG = f"""
ops:
  age_model:
    config:
      input_size: 32
      filters: [8, 16]
      dense_units: [16]
      batch_size: 16
      max_epochs: {EPOCHS}
      patience: {EPOCHS}
"""


def utkface_subset(folder: Path) -> tuple[Path, Path]:
    """PER_BIN UTKFace photos of each age bin copied into `folder`, and one other photo to ask the served model."""
    by_bin: dict[int, list[Path]] = {}
    for path in sorted((shared_data("utkface_part1") / "UTKFace").glob("*.jpg")):
        labels = parse_name(path.name)
        if labels:
            by_bin.setdefault(int(SEED_BINS.index(labels["age"])), []).append(path)
    folder.mkdir(parents=True)
    for photos in by_bin.values():
        for path in photos[:PER_BIN]:
            shutil.copy(path, folder / path.name)
    return folder, by_bin[5][PER_BIN]


def materialize_age_model(project: Path, home: Path) -> subprocess.Popen:
    """`dagster asset materialize` of age_model with KERAS_BACKEND=jax, in a process group of its own."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AGENET_", "MLFLOW_", "DAGSTER_HOME"))}
    dagster = Path(sys.executable).parent / "dagster"
    return subprocess.Popen(
        [str(dagster), "asset", "materialize", "-m", "agenet_pipeline", "--select", "age_model", "-c", "config.yaml"],
        cwd=project,
        env={
            **inherited,
            "DAGSTER_HOME": str(project),
            "AGENET_HOME": str(home),
            "KERAS_BACKEND": "jax",
            "PYTHONPATH": str(REPOSITORY),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def killed_runs_freed(project: Path, home: Path) -> None:
    """Delete the runs left *started* by the kill, as the README tells a user to: a run killed with SIGKILL is never
    marked as ended, and would hold the `gpu` pool's one slot."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGENET_HOME", str(home))
        with DagsterInstance.from_config(str(project)) as instance:
            for run in instance.get_runs():
                instance.delete_run(run.run_id)


def kill_after_first_checkpoint(process: subprocess.Popen, checkpoints: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not list(checkpoints.glob("age_model/*/backup/training_metadata.json")):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def jax_trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jax")
    root, question = utkface_subset(folder / "UTKFace")
    project, home = folder / "project", folder / "project" / ".agenet"
    project.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", project / "dagster.yaml")
    (project / "config.yaml").write_text(CONFIG)
    resources = {
        "home": AgeNetHome(path=str(home)),
        "dataset_roots": DatasetRoots(utkface=str(root)),
        "face_detector": FaceDetectorResource(),
        "mlflow": MLflowResource(),
    }
    upstream = [training for training in TRAINING_ASSETS if training.key.path[-1] != "age_model"]
    config = {"ops": {"faces_utkface": {"config": {"fallback_whole_image": True}}}}
    assert materialize([*DATA_ASSETS, *upstream], resources=resources, run_config=config).success

    killed = materialize_age_model(project, home)
    kill_after_first_checkpoint(killed, home / "checkpoints")
    killed_runs_freed(project, home)
    rerun = materialize_age_model(project, home)
    try:
        output = rerun.communicate(timeout=300)[0]
    finally:
        if rerun.poll() is None:
            os.killpg(rerun.pid, signal.SIGKILL)
    assert rerun.returncode == 0, output[-4000:]
    return project, home, question


def test_the_rerun_resumed_the_killed_training_without_tensorflow(jax_trained, monkeypatch):
    project, home, _ = jax_trained
    monkeypatch.setenv("AGENET_HOME", str(home))
    with DagsterInstance.from_config(str(project)) as instance:
        event = instance.get_latest_materialization_event(AssetKey("age_model"))
    metadata = {key: value.value for key, value in event.asset_materialization.metadata.items()}
    assert metadata["keras backend"] == "jax"
    assert metadata["tensorflow loaded"] is False  # sys.modules of the step process that trained
    assert 1 <= metadata["resumed at epoch"] < EPOCHS and metadata["epochs"] == EPOCHS


def test_the_registered_model_trained_on_jax_answers_on_tensorflow(jax_trained, mlflow_store):
    _, home, question = jax_trained
    mlflow_store(f"sqlite:///{home / 'mlflow.db'}")
    [version] = mlflow.MlflowClient().search_model_versions("name='agenet'")
    assert mlflow.get_run(version.run_id).data.params["keras_backend"] == "jax"
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/agenet/{version.version}")).read_text()
    assert "jax==" in requirements and "tensorflow" not in requirements  # a GPU worker has no TensorFlow to pin
    served = mlflow.pyfunc.load_model(f"models:/agenet/{version.version}")
    answer = served.predict(pd.DataFrame({"path": [str(question)]}), params={"aligned": True})
    assert answer["status"].tolist() == ["ok"] and 0 <= answer["age"].iloc[0] <= 120
