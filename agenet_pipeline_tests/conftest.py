import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest

from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline_tests.formats import empty_scene, group_photo, jpeg

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or a skip when this machine does not have it (a failure in CI, which has it)."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{folder} is not here, and CI must have the real face data beside the project")
        pytest.skip(
            f"{folder} is not here: the real face data sits beside the project on developer machines and CI only"
        )
    return folder


def execute_job(folder: Path, job: str, config: str, env: dict[str, str] | None = None) -> str:
    """`dagster job execute` of `job` with `config` (YAML) in `folder`, its own DAGSTER_HOME, as a user runs it; the
    datasets are only those `env` names, and its MLflow store is the folder's own (no AGENET_* or MLFLOW_* variable
    of the caller's reaches it: mlflow.set_tracking_uri sets one). Returns its output."""
    (folder / f"{job}.yaml").write_text(config)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AGENET_", "MLFLOW_", "DAGSTER_HOME"))}
    dagster = Path(sys.executable).parent / "dagster"
    completed = subprocess.run(
        [str(dagster), "job", "execute", "-m", "agenet_pipeline", "-j", job, "-c", f"{job}.yaml"],
        cwd=folder,
        env={**inherited, **(env or {}), "DAGSTER_HOME": str(folder)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout + completed.stderr


@pytest.fixture
def utkface_part1() -> Path:
    return shared_data("utkface_part1")


@pytest.fixture
def adience_sample() -> Path:
    return shared_data("adience_sample")


@pytest.fixture
def fgnet() -> Path:
    return shared_data("fgnet")


# One tiny registered serving model for every test that serves, and drawn photos (no real person) to send it.


@dataclass(frozen=True)
class Registry:
    uri: str
    folder: Path
    version: str
    run_id: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    """A tiny network logged as a training run logs it, its served model registered as `agenet`, aliased
    champion."""
    from agenet_pipeline.model.architecture import ModelConfig, build_model
    from agenet_pipeline.serving.packaging import log_serving_model
    from agenet_pipeline.tracking.runs import log_network
    from agenet_pipeline.tracking.store import use_experiment

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    use_experiment(uri, "agenet", str(folder / "mlartifacts"))
    with mlflow.start_run() as run:
        mlflow.log_metrics({"test_mae_years": 12.5, "test_exact_accuracy": 0.25})
        network = build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,)))
        log_network(network, 32, 10)
        version = str(log_serving_model(network, registered_name="agenet").registered_model_version)
    mlflow.MlflowClient(uri).set_registered_model_alias("agenet", "champion", version)
    yield Registry(uri, folder, version, run.info.run_id)
    mlflow.set_tracking_uri(saved[0])
    mlflow.set_registry_uri(saved[1])


@pytest.fixture(scope="session")
def served(registry):
    """The champion, loaded as a user loads it."""
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    return mlflow.pyfunc.load_model("models:/agenet@champion")


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """A folder: a group photo, a photo with no face, a text file, and a nested folder with a face and a dotfile."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "group.jpg").write_bytes(jpeg(group_photo()))
    (folder / "empty.png").write_bytes(cv2.imencode(".png", empty_scene())[1].tobytes())
    (folder / "notes.txt").write_text("not a photo")
    (folder / "nested").mkdir()
    (folder / "nested" / "one.jpg").write_bytes(jpeg(draw_face(40.0, np.random.default_rng(1), 256)))
    (folder / "nested" / ".hidden.jpg").write_bytes(b"left out")
    return folder
