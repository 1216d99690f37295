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
# MLflow's global store: mlflow.set_tracking_uri and set_registry_uri keep it in the process and in these variables
# (so that subprocesses inherit it), set_experiment the experiment; the package's `connect` and the `agenet`
# command set them too.
MLFLOW_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")


def on_ci() -> bool:
    """Whether this is a CI run: CI services set CI (to true, 1 or the service's name)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_data(name: str) -> Path:
    """A folder of ../shared/data; where it is absent, a skip on a developer machine and a failure on CI, so that
    the real-data tests never vanish from CI unnoticed."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        reason = f"{folder} is not here: the real face data sits beside the project on developer machines and CI"
        if on_ci():
            pytest.fail(f"{reason}; CI must provide it (CI is set), or its real-data tests would silently not run")
        pytest.skip(reason)
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
    champion. Its head is the default recipe's: a probability per year."""
    from agenet_pipeline.model.architecture import ModelConfig, build_model
    from agenet_pipeline.serving.packaging import log_serving_model
    from agenet_pipeline.tracking.runs import log_network
    from agenet_pipeline.tracking.store import use_experiment

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    use_experiment(uri, "agenet", str(folder / "mlartifacts"))  # the store is put back after the first test
    with mlflow.start_run() as run:
        mlflow.log_metrics({"test_mae_years": 12.5, "test_exact_accuracy": 0.25})
        network = build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,), head="years"))
        log_network(network, 32, 101)
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


@pytest.fixture(scope="session")
def bundle(registry, tmp_path_factory) -> Path:
    """The champion exported by `agenet export` in every format, its int8 network calibrated on drawn faces."""
    from agenet_pipeline.serving.cli import main

    folder = tmp_path_factory.mktemp("export")
    (folder / "calibration").mkdir()
    rng = np.random.default_rng(3)
    for age in rng.uniform(1, 80, 12):
        (folder / "calibration" / f"{age:.0f}.jpg").write_bytes(jpeg(draw_face(float(age), rng, 160)))
    args = ["export", "--tracking-uri", registry.uri, "--output", str(folder / "bundle"), "--calibration"]
    assert main([*args, *map(str, sorted((folder / "calibration").iterdir()))]) == 0
    return folder / "bundle"


@pytest.fixture(autouse=True)
def mlflow_store_put_back():
    """Whatever MLflow store a test points the process at, the next test finds the one that was there before: no
    test runs against a store another test left behind."""
    saved = {name: os.environ.get(name) for name in MLFLOW_STORE_VARIABLES}
    yield
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def mlflow_store():
    """`mlflow_store(uri)`: MLflow's global tracking and registry store, which the fluent API (`start_run`,
    `keras.load_model`, `pyfunc.load_model`) uses, is `uri` for the rest of this test."""

    def point(uri: str) -> str:
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return uri

    return point
