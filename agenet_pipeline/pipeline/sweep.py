"""The hyperparameter sweep job: trials of a grid or random search, each a child MLflow run of one parent.

Trials run as parallel Dagster ops in the `training` pool, so the pool's limit (dagster.yaml) caps how many
train at once. They train on the preliminary model's data (the datasets with trusted labels: all but IMDB) and
are compared on the best validation loss. A trial that fails (a diverging learning rate, say) is a FAILED child
run and a row of the table; the sweep fails only when every trial does.
"""

import dataclasses

import polars as pl
from dagster import Config, DynamicOut, DynamicOutput, Failure, MetadataValue, OpExecutionContext, Output, job, op
from pydantic import Field

from agenet_pipeline.core.code import code_version
from agenet_pipeline.model.search import trials
from agenet_pipeline.pipeline.assets.metadata import markdown_table
from agenet_pipeline.pipeline.assets.training import TRAINS_ON
from agenet_pipeline.pipeline.queues import GPU_QUEUE
from agenet_pipeline.pipeline.resources import CODE_TAG, AgeNetHome, MLflowResource

SEARCHED = ("learning_rate", "filters", "kernel_size", "dense_units")


class SweepConfig(Config):
    recipe: str = Field(default="recommended", description="The recipe whose settings the trials change")
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
    from agenet_pipeline.tracking.sweep import open_sweep

    space = {name: getattr(config, name) for name in SEARCHED}
    planned = trials(space, config.method, config.trials, config.seed)
    params = {**{f"space.{name}": values for name, values in space.items()}, "method": config.method}
    parent = open_sweep(
        mlflow.store(home.folder),
        {"dagster.run_id": context.run_id, "dagster.job": "sweep_job"},
        {**params, "trials": len(planned)},
    )
    fixed = {k: v for k, v in (("input_size", config.input_size), ("max_epochs", config.max_epochs)) if v is not None}
    for index, settings in enumerate(planned):
        yield DynamicOutput(
            {"index": index, "parent_run_id": parent, "settings": {"recipe": config.recipe, **fixed, **settings}},
            mapping_key=f"trial_{index}",
        )


@op(pool="training", tags=GPU_QUEUE)
def run_trial(context: OpExecutionContext, trial: dict, home: AgeNetHome, mlflow: MLflowResource) -> dict:
    """Train one trial as a child run of the sweep's parent run, on the preliminary model's data."""
    from agenet_pipeline.datasets.provenance import provenance
    from agenet_pipeline.model.training_sets import splits_and_files, training_data
    from agenet_pipeline.tracking.sweep import run_trial as train_trial

    folder = home.folder
    name = f"trial_{trial['index']}"
    datasets, inputs = TRAINS_ON["preliminary_model"]
    synthetic = {d: provenance(folder, d).synthetic for d in datasets}
    result = train_trial(
        mlflow.store(folder),
        trial["parent_run_id"],
        trial["index"],
        trial["settings"],
        training_data(*splits_and_files(folder), datasets, inputs, synthetic),
        folder.checkpoint_folder(f"sweep/{context.run_id}/{name}"),
        {"dagster.run_id": context.run_id},
    )
    if result.error:
        context.log.error(f"{name} failed: {result.error}")
    return {**dataclasses.asdict(result), "parent_run_id": trial["parent_run_id"]}


@op
def pick_best(context: OpExecutionContext, results: list[dict], home: AgeNetHome, mlflow: MLflowResource) -> Output:
    """Name the trial with the lowest validation loss in the parent run and in this op's metadata."""
    from agenet_pipeline.tracking.sweep import TrialResult, close_sweep

    parent = results[0]["parent_run_id"]
    trial_results = [TrialResult(**{k: v for k, v in r.items() if k != "parent_run_id"}) for r in results]
    best = close_sweep(mlflow.store(home.folder), parent, trial_results)
    failed = [r for r in trial_results if r.error]
    if best is None:
        raise Failure(f"every trial of the sweep failed; the first: {failed[0].error}")
    table = pl.DataFrame(
        [
            {
                "trial": r.index,
                **{k: str(r.settings.get(k)) for k in SEARCHED},
                "best val loss": r.best_val_loss,
                "val accuracy": r.val_accuracy,
                "epochs": r.epochs,
                "mlflow run": r.run_id,
                "error": r.error,
            }
            for r in sorted(trial_results, key=lambda r: r.index)
        ],
        schema_overrides={"best val loss": pl.Float64, "val accuracy": pl.Float64, "epochs": pl.Int64},
    )
    return Output(
        dataclasses.asdict(best) | {"parent_run_id": parent},
        metadata={
            "best trial": best.index,
            "best trial run id": best.run_id,
            "best settings": MetadataValue.json(dict(best.settings)),
            "parent run id": parent,
            "failed trials": len(failed),
            "trials": markdown_table(table),
        },
    )


@job(
    description="Hyperparameter sweep: a grid or random search of trials, child MLflow runs of one parent.",
    tags={CODE_TAG: code_version()},
)
def sweep_job():
    pick_best(plan_trials().map(run_trial).collect())
