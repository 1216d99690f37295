"""MLflow: where runs and registered models are kept, and what a training run records."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import keras
import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from agenet_pipeline.serving.packaging import log_serving_model, pinned_requirements


class TrackingStoreError(RuntimeError):
    pass


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
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(name, artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


class EpochMetrics(keras.callbacks.Callback):
    """Logs Keras' epoch metrics (loss, accuracy, their validation twins) to the active MLflow run."""

    def on_epoch_end(self, epoch, logs=None):
        mlflow.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch + 1)


def flat_params(prefix: str, config) -> dict[str, str]:
    return {f"{prefix}.{k}": str(v) for k, v in asdict(config).items()}


def signature(input_size: int, bins: int) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, input_size, input_size, 3), "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, bins), "bin_probabilities")]),
    )


def training_curves(history: Mapping[str, list[float]]):
    """A figure of loss and accuracy per epoch, training beside validation."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for axis, metric in zip(axes, ("loss", "accuracy", "one_off_accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                axis.plot(range(1, len(values) + 1), values, style, label=(prefix or "train_") + metric)
        axis.set_xlabel("epoch")
        axis.set_title(metric.replace("_", " "))
        axis.legend()
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def log_and_register(
    model: keras.Model, input_size: int, bins: int, registered_name: str | None
) -> RegisteredVersion | None:
    """Log the Keras network to the active run as `model` (with a signature: `input_example` crashes the Keras
    flavour). When `registered_name` is given, also log the served model (photos in, ages out) as
    `serving_model` and register it as a new version of that name; a model nobody serves is not packaged."""
    mlflow.keras.log_model(
        model,
        name="model",
        signature=signature(input_size, bins),
        pip_requirements=pinned_requirements("mlflow", "tensorflow", "keras", "numpy"),
    )
    if registered_name is None:
        return None
    info = log_serving_model(model, name="serving_model", registered_name=registered_name)
    return RegisteredVersion(registered_name, str(info.registered_model_version), mlflow.active_run().info.run_id)
