"""What a training run records in MLflow: parameters, epoch metrics, curves, the network, reports added later."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from agenet_pipeline.core.files import write_bytes


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
    """A figure of loss, MAE and accuracy per epoch, training beside validation."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    metrics = ("loss", "mae_years", "accuracy", "one_off_accuracy")
    figure, axes = plt.subplots(1, len(metrics), figsize=(17, 3.6))
    for axis, metric in zip(axes, metrics):
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


@dataclass(frozen=True)
class ModelRecord:
    """What a training step leaves beside its Keras file for the steps after it: its MLflow run and version."""

    run_id: str
    tracking_uri: str
    model_path: str
    registered_model: str | None
    version: str | None
    datasets: list[str]

    def save(self, path: Path) -> Path:
        return write_bytes(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path, step: str) -> ModelRecord:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: materialise {step} first")
        return cls(**json.loads(path.read_text()))


def pinned_requirements(*packages: str) -> list[str]:
    """The installed versions of `packages`, pinned. Given to MLflow, they spare it inferring the requirements
    in a subprocess that imports TensorFlow again (about 20 s per logged model on two cores)."""
    return [f"{package}=={version(package)}" for package in packages]


def model_backend() -> str:
    """The Keras backend in use (`KERAS_BACKEND`): the one a logged model's requirements pin."""
    return keras.backend.backend()


def backend_package() -> str:
    """The package of the Keras backend in use, which a logged model needs beside Keras: a GPU worker training on
    JAX has no TensorFlow to pin."""
    return {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[model_backend()]


def log_network(model: keras.Model, input_size: int, bins: int) -> None:
    """Log the Keras network to the active run as `model` (with a signature: `input_example` crashes the Keras
    flavour)."""
    mlflow.keras.log_model(
        model,
        name="model",
        signature=signature(input_size, bins),
        pip_requirements=pinned_requirements("mlflow", backend_package(), "keras", "numpy"),
    )


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
