"""One tiny registered serving model for every serving test, and drawn photos (no real person) to send it."""

from dataclasses import dataclass
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest

from agenet_pipeline.datasets.synthetic_faces import draw_face

GROUP_AGES = (8, 35, 70)


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def group_photo() -> np.ndarray:
    """Three drawn people side by side, each in a 200-pixel third of the photo (600x200)."""
    rng = np.random.default_rng(3)
    return np.concatenate([draw_face(age, rng, 200) for age in GROUP_AGES], axis=1)


def empty_scene() -> np.ndarray:
    """A photo with no face: a colour ramp."""
    ramp = np.linspace(0, 255, 240, dtype=np.float32)
    return np.stack([np.tile(ramp, (180, 1)), np.tile(ramp[::-1], (180, 1)), np.full((180, 240), 90.0)], -1).astype(
        np.uint8
    )


@dataclass(frozen=True)
class Registry:
    uri: str
    folder: Path
    version: str
    run_id: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    """A tiny network logged and registered as `agenet` with log_and_register, aliased champion."""
    from agenet_pipeline.model.architecture import ModelConfig, build_model
    from agenet_pipeline.model.tracking import log_and_register, use_experiment

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    use_experiment(uri, "agenet", str(folder / "mlartifacts"))
    with mlflow.start_run() as run:
        mlflow.log_metrics({"test_mae_years": 12.5, "test_exact_accuracy": 0.25})
        version = log_and_register(
            build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,))), 32, 10, "agenet"
        )
    mlflow.MlflowClient(uri).set_registered_model_alias("agenet", "champion", version.version)
    yield Registry(uri, folder, version.version, run.info.run_id)
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
