"""The evaluation's side of MLflow: a training run's Keras model, and a report added to a finished run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient

if TYPE_CHECKING:
    import keras


def client_for(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def keras_model_of_run(client: MlflowClient, run_id: str) -> keras.Model:
    """The Keras model a training run logged (whatever else it logged, such as a serving model)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    for logged in client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'"):
        if "keras" in mlflow.models.get_model_info(logged.model_uri).flavors:
            return mlflow.keras.load_model(logged.model_uri)
    raise LookupError(f"MLflow run {run_id} logged no Keras model to re-score")


def log_report(
    client: MlflowClient,
    run_id: str,
    folder: Path,
    artifact_path: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str] | None = None,
) -> None:
    """Add the files of `folder` (under `artifact_path`), metrics and tags to the run, finished or not."""
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    client.log_artifacts(run_id, str(folder), artifact_path)
