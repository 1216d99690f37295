"""A training run as MLflow records it: parameters, lineage, per-epoch metrics, curves, test scores, model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from agenet_pipeline.model.architecture import ModelConfig
from agenet_pipeline.model.metrics import Scores, score
from agenet_pipeline.model.predict import predict_files
from agenet_pipeline.model.tracking import (
    EpochMetrics,
    RegisteredVersion,
    check_store,
    flat_params,
    log_and_register,
    training_curves,
    use_experiment,
)
from agenet_pipeline.model.training import TrainingConfig, TrainingResult, train


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    result: TrainingResult
    test_scores: Scores
    version: RegisteredVersion | None


@dataclass(frozen=True)
class TrainingData:
    train_files: Sequence[str]
    validation_files: Sequence[str]
    test_files: Sequence[str]
    lineage: Mapping[str, str]
    inputs: Sequence[str] = ()  # the Dagster asset keys the files come from


def tracked_training(
    tracking_uri: str,
    experiment: str,
    artifact_location: str | None,
    run_name: str,
    tags: Mapping[str, str],
    model_config: ModelConfig,
    config: TrainingConfig,
    data: TrainingData,
    checkpoint_dir: Path,
    registered_name: str | None = None,
    log_model: bool = True,
) -> TrackedRun:
    """Train inside an MLflow run; the store is checked first so that a missing one fails before any epoch.

    The model is logged (and registered under `registered_name`, when given) unless `log_model` is off.
    """
    check_store(tracking_uri)
    use_experiment(tracking_uri, experiment, artifact_location)
    with mlflow.start_run(run_name=run_name, tags=dict(tags)) as run:
        mlflow.log_params(
            {
                **flat_params("model", model_config),
                **flat_params("training", config),
                **data.lineage,
                "data.inputs": ", ".join(data.inputs),
            }
        )
        result = train(
            model_config, config, data.train_files, data.validation_files, checkpoint_dir, callbacks=[EpochMetrics()]
        )
        mlflow.log_params({"resumed_at_epoch": result.resumed_at_epoch})
        mlflow.log_metrics({"epochs": result.epochs, "best_epoch": result.best_epoch})
        keys, probabilities = predict_files(result.model, data.test_files)
        test_scores = score(probabilities, keys["age"].to_numpy())
        mlflow.log_metrics({**test_scores.as_dict("test_"), "test_examples": test_scores.count})
        mlflow.log_figure(training_curves(result.history), "training_curves.png")
        version = (
            log_and_register(result.model, model_config.input_size, model_config.bins, registered_name)
            if log_model
            else None
        )
        return TrackedRun(run.info.run_id, run.info.experiment_id, result, test_scores, version)
