import os
import sys
from pathlib import Path

import pytest

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


@pytest.fixture
def utkface_part1() -> Path:
    return shared_data("utkface_part1")


@pytest.fixture
def adience_sample() -> Path:
    return shared_data("adience_sample")


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
