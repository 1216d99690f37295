"""The hyperparameter sweep job: trials of a grid or random search, each a child MLflow run of one parent.

Trials run as parallel Dagster ops in the `training` pool, so the pool's limit (dagster.yaml) caps how many
train at once. They train on APPA-REAL and UTKFace (the preliminary model's data) and are compared on the
best validation loss. A trial that fails (a diverging learning rate, say) is a FAILED child run and a row of the
table; the sweep fails only when every trial does.
"""

from dagster import Config, DynamicOut, DynamicOutput, Failure, MetadataValue, OpExecutionContext, Output, job, op
from pydantic import Field

from agenet_pipeline.assets.metadata import markdown_table
from agenet_pipeline.assets.training import APPA_UTK, ModelTrainingConfig, _splits_and_files, _training_data
from agenet_pipeline.model.search import trials
from agenet_pipeline.resources import AgeNetHome, MLflowResource

SEARCHED = ("learning_rate", "filters", "kernel_size", "dense_units")


class SweepConfig(Config):
    recipe: str = Field(default="seed", description="The recipe whose settings the trials change")
    method: str = Field(default="grid", description="'grid' (every combination) or 'random'")
    trials: int = Field(default=8, description="Trials of a random search")
    seed: int = Field(default=0, description="Seed of a random search")
    learning_rate: list[float] = Field(default=[3e-4, 1e-3], description="Adam learning rates to try")
    filters: list[list[int]] = Field(
        default=[[64, 128, 256, 512, 1024], [32, 64, 128, 256, 512]],
        description="Filters per conv layer to try (their count is the conv layers)",
    )
    kernel_size: list[int] = Field(default=[3], description="Kernel sizes to try")
    dense_units: list[list[int]] = Field(default=[[256, 128]], description="Dense layers to try")
    input_size: int | None = Field(default=None, description="Input size of every trial (default: the recipe's)")
    max_epochs: int | None = Field(default=None, description="Epoch limit of every trial (default: the recipe's)")


@op(out=DynamicOut(dict))
def plan_trials(context: OpExecutionContext, config: SweepConfig, home: AgeNetHome, mlflow: MLflowResource):
    """Open the parent MLflow run and emit one trial per point of the search space."""
    import mlflow as tracking

    from agenet_pipeline.model.tracking import check_store, use_experiment

    uri = mlflow.uri(home)
    check_store(uri)
    experiment_id = use_experiment(uri, mlflow.experiment, mlflow.artifact_location(home))
    client = tracking.MlflowClient(uri)
    planned = trials({name: getattr(config, name) for name in SEARCHED}, config.method, config.trials, config.seed)
    parent = client.create_run(
        experiment_id, run_name="sweep", tags={"dagster.run_id": context.run_id, "dagster.job": "sweep_job"}
    )
    for name in SEARCHED:
        client.log_param(parent.info.run_id, f"space.{name}", str(getattr(config, name)))
    client.log_param(parent.info.run_id, "method", config.method)
    client.log_param(parent.info.run_id, "trials", len(planned))
    fixed = {k: v for k, v in (("input_size", config.input_size), ("max_epochs", config.max_epochs)) if v is not None}
    for index, settings in enumerate(planned):
        yield DynamicOutput(
            {
                "index": index,
                "parent_run_id": parent.info.run_id,
                "settings": {"recipe": config.recipe, **fixed, **settings},
            },
            mapping_key=f"trial_{index}",
        )


@op(pool="training")
def run_trial(context: OpExecutionContext, trial: dict, home: AgeNetHome, mlflow: MLflowResource) -> dict:
    """Train one trial as a child run of the sweep's parent run."""
    from agenet_pipeline.model.experiment import tracked_training
    from agenet_pipeline.model.training import TrainingError

    recipe = ModelTrainingConfig(**trial["settings"]).recipe_with_changes()
    splits, files = _splits_and_files(home)
    tags = {
        "mlflow.parentRunId": trial["parent_run_id"],
        "dagster.run_id": context.run_id,
        "sweep.trial": str(trial["index"]),
    }
    name = f"trial_{trial['index']}"
    try:
        run = tracked_training(
            mlflow.uri(home),
            mlflow.experiment,
            mlflow.artifact_location(home),
            name,
            tags,
            recipe.network,
            recipe.training,
            _training_data(splits, files, APPA_UTK, ("training_shards",)),
            home.checkpoint_folder(f"sweep/{context.run_id}/{name}"),
            log_model=False,
        )
    except (TrainingError, ValueError) as error:  # a diverging or impossible trial must not lose the others
        context.log.error(f"{name} failed: {type(error).__name__}: {error}")
        return {**trial, "error": f"{type(error).__name__}: {error}"}
    history = run.result.history
    return {
        **trial,
        "run_id": run.run_id,
        "best_val_loss": min(history["val_loss"]),
        "val_accuracy": history["val_accuracy"][run.result.best_epoch - run.result.resumed_at_epoch - 1],
        "epochs": run.result.epochs,
    }


@op
def pick_best(context: OpExecutionContext, results: list[dict], home: AgeNetHome, mlflow: MLflowResource) -> Output:
    """Name the trial with the lowest validation loss in the parent run and in this op's metadata."""
    import mlflow as tracking
    import polars as pl

    client = tracking.MlflowClient(mlflow.uri(home))
    parent = results[0]["parent_run_id"]
    failed = [r for r in results if "error" in r]
    client.log_metric(parent, "failed_trials", len(failed))
    finished = [r for r in results if "error" not in r]
    if not finished:
        client.set_terminated(parent, "FAILED")
        raise Failure(f"every trial of the sweep failed; the first: {failed[0]['error']}")
    best = min(finished, key=lambda r: r["best_val_loss"])
    client.set_tag(parent, "best_trial_run_id", best["run_id"])
    client.set_tag(parent, "best_trial_settings", str(best["settings"]))
    client.log_metric(parent, "best_val_loss", best["best_val_loss"])
    client.log_metric(parent, "best_val_accuracy", best["val_accuracy"])
    client.set_terminated(parent)
    table = pl.DataFrame(
        [
            {
                "trial": r["index"],
                **{k: str(r["settings"].get(k)) for k in SEARCHED},
                "best val loss": round(r["best_val_loss"], 4) if "error" not in r else None,
                "val accuracy": round(r["val_accuracy"], 4) if "error" not in r else None,
                "epochs": r.get("epochs"),
                "mlflow run": r.get("run_id"),
                "error": r.get("error"),
            }
            for r in sorted(results, key=lambda r: r["index"])
        ]
    )
    return Output(
        best,
        metadata={
            "best trial": best["index"],
            "best trial run id": best["run_id"],
            "best settings": MetadataValue.json(best["settings"]),
            "parent run id": parent,
            "failed trials": len(failed),
            "trials": markdown_table(table),
        },
    )


@job(description="Hyperparameter sweep: a grid or random search of trials, child MLflow runs of one parent.")
def sweep_job():
    pick_best(plan_trials().map(run_trial).collect())
