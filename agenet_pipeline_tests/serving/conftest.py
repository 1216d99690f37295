"""One tiny registered serving model for every serving test, and drawn photos (no real person) to send it."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest

from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline_tests.formats import empty_scene, group_photo, jpeg


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
    use_experiment(uri, "agenet", str(folder / "mlartifacts"))  # the store is put back after the first test
    with mlflow.start_run() as run:
        mlflow.log_metrics({"test_mae_years": 12.5, "test_exact_accuracy": 0.25})
        network = build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,)))
        log_network(network, 32, 10)
        version = str(log_serving_model(network, registered_name="agenet").registered_model_version)
    mlflow.MlflowClient(uri).set_registered_model_alias("agenet", "champion", version)
    return Registry(uri, folder, version, run.info.run_id)


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
