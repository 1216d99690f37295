"""A training run as MLflow records it: parameters, lineage, per-epoch metrics, curves, test scores, model.

`train_and_record` is what the pipeline's training steps run: the tracked training, then the Keras file and
the JSON record that the steps after it read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
from mlflow.models.model import ModelInfo

from agenet_pipeline.core.home import Home
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.model.batch_prediction import predict_files
from agenet_pipeline.model.metrics import Scores, constant_guess, score
from agenet_pipeline.model.recipes import Recipe
from agenet_pipeline.model.training import TrainingResult, save_model, train
from agenet_pipeline.model.training_sets import TrainingData
from agenet_pipeline.tracking.runs import (
    EpochMetrics,
    ModelRecord,
    RegisteredVersion,
    flat_params,
    log_network,
    training_curves,
)
from agenet_pipeline.tracking.store import Store, check_store, use_experiment

# Logs the served model of a trained network, cropping faces with the given settings, into the active run and
# registers it.
Publish = Callable[[keras.Model, FaceSettings | None], ModelInfo]


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    result: TrainingResult
    test_scores: Scores
    version: RegisteredVersion | None


def tracked_training(
    store: Store,
    run_name: str,
    tags: Mapping[str, str],
    recipe: Recipe,
    data: TrainingData,
    checkpoint_dir: Path,
    publish: tuple[str, Publish] | None = None,
    log_model: bool = True,
) -> TrackedRun:
    """Train inside an MLflow run; the store is checked first so that a missing one fails before any epoch.

    The network is logged unless `log_model` is off; `publish` (a registered name and the function that logs
    the served model) also registers a version.
    """
    check_store(store.tracking_uri)
    use_experiment(store.tracking_uri, store.experiment, store.artifact_location)
    with mlflow.start_run(run_name=run_name, tags={**tags, **data.provenance_tags}) as run:
        mlflow.log_params(
            {
                **flat_params("model", recipe.network),
                **flat_params("training", recipe.training),
                **data.lineage,
                "data.inputs": ", ".join(data.inputs),
                **(flat_params("faces", data.faces) if data.faces else {}),
            }
        )
        result = train(
            recipe.network,
            recipe.training,
            data.train_files,
            data.validation_files,
            checkpoint_dir,
            callbacks=[EpochMetrics()],
        )
        mlflow.log_params({"resumed_at_epoch": result.resumed_at_epoch, "keras_backend": keras.backend.backend()})
        mlflow.log_metrics({"epochs": result.epochs, "best_epoch": result.best_epoch})
        keys, probabilities = predict_files(result.model, data.test_files)
        test_scores = score(probabilities, keys["age"].to_numpy())
        mlflow.log_metrics({**test_scores.as_dict("test_"), "test_examples": test_scores.count})
        mlflow.log_figure(training_curves(result.history), "training_curves.png")
        version = None
        if log_model:
            log_network(result.model, recipe.network.input_size, len(recipe.network.output_bins))
        if log_model and publish:
            name, log_served = publish
            info = log_served(result.model, data.faces)
            version = RegisteredVersion(name, str(info.registered_model_version), run.info.run_id)
            client = mlflow.MlflowClient()
            for key, value in data.provenance_tags.items():
                client.set_model_version_tag(name, version.version, key, value)
        return TrackedRun(run.info.run_id, run.info.experiment_id, result, test_scores, version)


@dataclass(frozen=True)
class TrainedModel:
    run: TrackedRun
    record: ModelRecord
    constant_guess: Scores  # the best constant answers, on the same test rows
    data_tags: Mapping[str, str]  # data.synthetic and the datasets' rows
    backend: str  # the Keras backend it was trained with


def train_and_record(
    home: Home,
    store: Store,
    name: str,
    tags: Mapping[str, str],
    recipe: Recipe,
    data: TrainingData,
    publish: tuple[str, Publish] | None = None,
) -> TrainedModel:
    """Train `name` (resuming an interrupted run of the same recipe on the same data), save the network under
    the home and write the record of its run and version beside it."""
    same_training = hashlib.sha256(f"{recipe}|{sorted(data.lineage.items())}".encode()).hexdigest()[:12]
    run = tracked_training(store, name, tags, recipe, data, home.checkpoint_folder(f"{name}/{same_training}"), publish)
    model_path = home.model_path(name)
    save_model(run.result.model, model_path)
    record = ModelRecord(
        run_id=run.run_id,
        tracking_uri=store.tracking_uri,
        model_path=str(model_path),
        registered_model=run.version.name if run.version else None,
        version=run.version.version if run.version else None,
        datasets=list(data.datasets),
    )
    record.save(home.model_record_path(name))
    return TrainedModel(
        run, record, constant_guess(data.train_ages, data.test_ages), data.provenance_tags, keras.backend.backend()
    )
