"""The MLflow store: reached or refused at once, and the experiment that holds the training runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient


class TrackingStoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class Store:
    """Where training runs go: the MLflow store, the experiment, and a new experiment's artifact location."""

    tracking_uri: str
    experiment: str
    artifact_location: str | None = None


@contextmanager
def _no_retries() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_store(tracking_uri: str) -> None:
    """Fail at once, naming the URI, when the tracking and registry store cannot be reached."""
    try:
        with _no_retries():
            client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    except Exception as error:  # MLflow raises many types here: connection, SQL, permission, URI scheme
        raise TrackingStoreError(
            f"the MLflow store at {tracking_uri} cannot be reached ({type(error).__name__}: {error}). "
            "Start the tracking server or set the mlflow resource's tracking_uri to a store that exists."
        ) from error


def use_experiment(tracking_uri: str, name: str, artifact_location: str | None = None) -> str:
    """Point MLflow at the store and the experiment (created with `artifact_location` if new); its id."""
    connect(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(name, artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def connect(tracking_uri: str) -> MlflowClient:
    """Point MLflow's tracking and registry at one store, and a client of it."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)
