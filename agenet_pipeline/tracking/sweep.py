"""A hyperparameter sweep in MLflow: a parent run, a child run per trial, and the best trial named on the parent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agenet_pipeline.model.recipes import recipe_with_changes
from agenet_pipeline.model.training import TrainingError
from agenet_pipeline.model.training_sets import TrainingData
from agenet_pipeline.tracking.store import Store, check_store, connect, use_experiment
from agenet_pipeline.tracking.training_run import tracked_training


def open_sweep(store: Store, tags: Mapping[str, str], params: Mapping[str, object]) -> str:
    """Start the parent run of a sweep; its id."""
    check_store(store.tracking_uri)
    experiment_id = use_experiment(store.tracking_uri, store.experiment, store.artifact_location)
    client = connect(store.tracking_uri)
    parent = client.create_run(experiment_id, run_name="sweep", tags=dict(tags))
    for key, value in params.items():
        client.log_param(parent.info.run_id, key, str(value))
    return parent.info.run_id


@dataclass(frozen=True)
class TrialResult:
    index: int
    settings: Mapping[str, object]
    run_id: str | None = None
    best_val_loss: float | None = None
    val_accuracy: float | None = None
    epochs: int | None = None
    error: str | None = None


def close_sweep(store: Store, parent_run_id: str, results: Sequence[TrialResult]) -> TrialResult | None:
    """Record the failed trials and the best one (lowest validation loss) on the parent run, and end it: FAILED
    when every trial failed (then None is returned)."""
    client = connect(store.tracking_uri)
    failed = [r for r in results if r.error]
    client.log_metric(parent_run_id, "failed_trials", len(failed))
    finished = [r for r in results if not r.error]
    if not finished:
        client.set_terminated(parent_run_id, "FAILED")
        return None
    best = min(finished, key=lambda r: r.best_val_loss)
    client.set_tag(parent_run_id, "best_trial_run_id", best.run_id)
    client.set_tag(parent_run_id, "best_trial_settings", str(dict(best.settings)))
    client.log_metric(parent_run_id, "best_val_loss", best.best_val_loss)
    client.log_metric(parent_run_id, "best_val_accuracy", best.val_accuracy)
    client.set_terminated(parent_run_id)
    return best


def run_trial(
    store: Store,
    parent_run_id: str,
    index: int,
    settings: Mapping[str, object],
    data: TrainingData,
    checkpoint_dir: Path,
    tags: Mapping[str, str],
) -> TrialResult:
    """Train one trial (the recipe `settings["recipe"]` with the rest of `settings` changed) as a child run of
    the sweep. A trial that fails (a diverging learning rate, an impossible network) is a result with its error,
    never the loss of the sweep."""
    recipe = recipe_with_changes(str(settings["recipe"]), {k: v for k, v in settings.items() if k != "recipe"})
    tags = {**tags, "mlflow.parentRunId": parent_run_id, "sweep.trial": str(index)}
    try:
        run = tracked_training(store, f"trial_{index}", tags, recipe, data, checkpoint_dir, log_model=False)
    except (TrainingError, ValueError) as error:
        return TrialResult(index, settings, error=f"{type(error).__name__}: {error}")
    history = run.result.history
    return TrialResult(
        index,
        settings,
        run_id=run.run_id,
        best_val_loss=min(history["val_loss"]),
        val_accuracy=history["val_accuracy"][run.result.best_epoch - run.result.resumed_at_epoch - 1],
        epochs=run.result.epochs,
    )
