"""Training assets: the preliminary model, the IMDB subset it cleans, and the registered age model.

TensorFlow, Keras and MLflow are imported inside the assets: every Dagster step process imports this module,
and only the training steps need them. The Keras backend is the step process's `KERAS_BACKEND` (tensorflow by
default; jax or torch train without TensorFlow): Keras is imported when Dagster loads the definitions, before any
run config is read, so the backend is chosen in the environment of `dagster dev` or of the worker.
"""

import sys
from contextlib import contextmanager

import polars as pl
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, RetryPolicy, asset
from pydantic import Field

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.core.datasets import TRAINED_ON
from agenet_pipeline.pipeline.assets.labels import training_shards
from agenet_pipeline.pipeline.assets.metadata import markdown_table
from agenet_pipeline.pipeline.queues import GPU_QUEUE
from agenet_pipeline.pipeline.resources import AgeNetHome, MLflowResource

GROUP = "training"
# What each training step trains on: its datasets and the assets their files come from. The preliminary model,
# which cleans IMDB's labels, trains on the datasets with trusted labels: all but IMDB.
TRUSTED_LABELS = tuple(d for d in TRAINED_ON if d != "imdb_wiki")
TRAINS_ON = {
    "preliminary_model": (TRUSTED_LABELS, ("training_shards",)),
    "age_model": (TRAINED_ON, ("training_shards", "imdb_cleaned")),
}
# Steps that put a model on the GPU share the pool `gpu` (limit 1, dagster.yaml), so that two never fight for one
# GPU's memory. A retry of a training resumes from its last epoch's checkpoint.
GPU_POOL = "gpu"
GPU_RETRY = RetryPolicy(max_retries=1, delay=30)
# A step that holds a model: in the `gpu` pool and, on a cluster, on the `gpu` queue.
ON_THE_GPU = {"pool": GPU_POOL, "op_tags": GPU_QUEUE}


class ModelTrainingConfig(Config):
    """A recipe ('seed': the paper's; 'recommended': ours) and any settings to change in it."""

    recipe: str = Field(
        default="recommended",
        description="'recommended' (ours, the default), 'soft_bins' (ours before it: ten bins, plateau cuts) or "
        "'seed' (the paper's network and training)",
    )
    head: str | None = Field(
        default=None, description="The network's output: 'years' (one per year of life) or 'bins' (the paper's ten)"
    )
    input_size: int | None = Field(default=None, description="Side of the square input in pixels (256)")
    filters: list[int] | None = Field(default=None, description="Filters per conv layer (64, 128, 256, 512, 1024)")
    kernel_size: int | None = Field(default=None, description="Convolution kernel size (3)")
    dense_units: list[int] | None = Field(default=None, description="Units per dense layer (256, 128)")
    dropout: float | None = Field(
        default=None, description="Dropout after each conv layer (recommended: 0.1; seed: 0.187)"
    )
    learning_rate: float | None = Field(default=None, description="Adam learning rate (recommended: 1e-3; seed: 3e-4)")
    lr_plateau_patience: int | None = Field(
        default=None, description="Epochs without validation improvement before the learning rate is cut to 0.3x"
    )
    schedule: str | None = Field(
        default=None,
        description="Learning rate by epoch: 'constant' or 'cosine' (2 warm-up epochs, then a cosine to 0 at "
        "max_epochs) (recommended: cosine)",
    )
    batch_size: int | None = Field(default=None, description="Batch size (32)")
    max_epochs: int | None = Field(default=None, description="Epoch limit; early stopping usually ends sooner (30)")
    patience: int | None = Field(
        default=None, description="Epochs without validation improvement before stopping (recommended: 8; seed: 4)"
    )
    seed: int | None = Field(default=None, description="Seed of initialisation, shuffling and augmentation (0)")
    label_sigma: float | None = Field(
        default=None, description="Train on a label distribution this many years wide (recommended: 2; seed: none)"
    )
    expected_age_weight: float | None = Field(
        default=None, description="Weight of the expected age's error (years) in the loss (recommended: 1; seed: 0)"
    )
    greyscale: float | None = Field(
        default=None, description="Chance that an augmented training face is seen in grey (recommended: 0.2)"
    )
    mixed_precision: bool | None = Field(
        default=None, description="On a GPU, bfloat16 compute where it has it, else float16 (off)"
    )
    data_parallel: bool | None = Field(
        default=None, description="Split each batch over the devices (default: when more than one GPU is seen)"
    )
    loader_workers: int | None = Field(
        default=None, description="Threads decoding batches on the JAX and PyTorch backends (4)"
    )

    def recipe_with_changes(self):
        from agenet_pipeline.model.recipes import recipe_with_changes

        return recipe_with_changes(self.recipe, self.model_dump(exclude={"recipe"}))


@contextmanager
def final_on_training_error():
    """A TrainingError (an empty split, a diverged loss) fails the step for good: a retry would fail the same way."""
    from agenet_pipeline.model.training import TrainingError

    try:
        yield
    except TrainingError as error:
        raise Failure(str(error), allow_retries=False) from error


def _trained_metadata(trained) -> dict:
    scores, chance, run = trained.run.test_scores, trained.constant_guess, trained.run
    table = pl.DataFrame(
        {
            "": ["model", "constant guess (most frequent training bin; median training age for MAE)"],
            "exact": [scores.exact, chance.exact],
            "one-off": [scores.one_off, chance.one_off],
            "MAE (years)": [scores.mae, chance.mae],
        }
    )
    uri = trained.record.tracking_uri
    metadata = {
        "test scores": markdown_table(table),
        "test exact accuracy": scores.exact,
        "test MAE (years)": scores.mae,
        "test examples": scores.count,
        "epochs": run.result.epochs,
        "best epoch": run.result.best_epoch,
        "resumed at epoch": run.result.resumed_at_epoch,
        "keras backend": trained.backend,
        "tensorflow loaded": "tensorflow" in sys.modules,  # false: trained as where TensorFlow is not installed
        "mlflow run id": run.run_id,
        "mlflow tracking uri": uri,
        "mlflow ui": MetadataValue.text(f"mlflow ui --backend-store-uri {uri}"),
        "model file": MetadataValue.path(trained.record.model_path),
        **{key: MetadataValue.text(value) for key, value in trained.data_tags.items()},
    }
    if run.version:
        metadata |= {
            "registered model": run.version.name,
            "model version": run.version.version,
            "model uri": MetadataValue.text(run.version.uri),
        }
    return metadata


def _train(context, config: ModelTrainingConfig, home: AgeNetHome, mlflow: MLflowResource, name: str, publish):
    """Train `name` on the datasets its step trains on; `publish` registers the served model (or None)."""
    from agenet_pipeline.datasets.provenance import provenance
    from agenet_pipeline.faces.storage import face_settings_of
    from agenet_pipeline.model.training_sets import (
        splits_and_files,
        training_data,
        with_cleaned_imdb,
        without_dropped_imdb,
    )
    from agenet_pipeline.tracking.training_run import train_and_record

    folder = home.folder
    splits, files = splits_and_files(folder)
    datasets, inputs = TRAINS_ON[name]
    if "imdb_cleaned" in inputs:
        splits, files = without_dropped_imdb(folder, splits), with_cleaned_imdb(folder, files)
    tags = {"dagster.run_id": context.run_id, "dagster.asset": name}
    synthetic = {d: provenance(folder, d).synthetic for d in datasets}
    faces = {d: face_settings_of(folder.faces_folder(d)) for d in datasets}
    with final_on_training_error():
        data = training_data(splits, files, datasets, inputs, synthetic, faces)
        trained = train_and_record(
            folder, mlflow.store(folder), name, tags, config.recipe_with_changes(), data, publish
        )
    return MaterializeResult(metadata=_trained_metadata(trained))


@asset(
    group_name=GROUP,
    deps=[training_shards],
    kinds={"tensorflow", "mlflow"},
    retry_policy=GPU_RETRY,
    **ON_THE_GPU,
)
def preliminary_model(
    context: AssetExecutionContext, config: ModelTrainingConfig, home: AgeNetHome, mlflow: MLflowResource
) -> MaterializeResult:
    """The paper's first network, trained on the datasets with trusted labels only (APPA-REAL, UTKFace, a labels
    table: all but IMDB), to judge the noisy IMDB labels; not trained when there is no IMDB to judge, or nothing
    to train it on."""
    from agenet_pipeline.model.cleaning import why_no_preliminary_model

    folder = home.folder
    skipped = why_no_preliminary_model(pl.read_parquet(folder.splits_path), TRAINS_ON["preliminary_model"][0])
    if skipped:
        for stale in (folder.model_path("preliminary_model"), folder.model_record_path("preliminary_model")):
            stale.unlink(missing_ok=True)
        context.log.info(skipped)
        return MaterializeResult(metadata={"trained": False, "skipped": skipped})
    return _train(context, config, home, mlflow, "preliminary_model", publish=None)


class CleaningConfig(Config):
    threshold: float = Field(
        default=0.40,
        description="Least probability the preliminary model must give the "
        "labelled bin and its two neighbours for an image to stay",
    )


@asset(
    group_name=GROUP,
    deps=[preliminary_model],
    kinds={"tensorflow", "parquet"},
    retry_policy=GPU_RETRY,
    **ON_THE_GPU,
)
def imdb_cleaned(context: AssetExecutionContext, config: CleaningConfig, home: AgeNetHome) -> MaterializeResult:
    """IMDB training and validation faces judged by the preliminary model; kept ones written as new shards.

    The test split is left as it is, so that the test scores are not flattered by the cleaning.
    """
    from agenet_pipeline.model.cleaning import clean_imdb

    table = clean_imdb(home.folder, config.threshold)
    if table.note:
        context.log.info(table.note)
    for split, (kept, judged) in table.kept_per_split().items():
        context.log.info(f"{split}: kept {kept} of {judged}")
    per_bin = table.judged.group_by("bin").agg(pl.len().alias("judged"), (~pl.col("kept")).sum().alias("dropped"))
    per_bin = per_bin.sort("bin").with_columns(pl.col("bin").replace_strict(range(len(SEED_BINS)), SEED_BINS.labels))
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.judged.height,
            "kept": int(table.judged["kept"].sum()),
            "dropped": int((~table.judged["kept"]).sum()),
            "threshold": config.threshold,
            "note": table.note or "judged by the preliminary model",
            "dropped per labelled bin": markdown_table(per_bin),
            "judged rows (with probabilities)": MetadataValue.path(str(home.folder.imdb_cleaned_path)),
        }
    )


@asset(
    group_name=GROUP,
    deps=[imdb_cleaned],
    kinds={"tensorflow", "mlflow"},
    retry_policy=GPU_RETRY,
    **ON_THE_GPU,
)
def age_model(
    context: AssetExecutionContext, config: ModelTrainingConfig, home: AgeNetHome, mlflow: MLflowResource
) -> MaterializeResult:
    """The age network on APPA-REAL, UTKFace and the cleaned IMDB subset, registered in MLflow."""
    from agenet_pipeline.serving.packaging import log_serving_model

    name = mlflow.registered_model
    publish = (name, lambda model, faces: log_serving_model(model, registered_name=name, settings=faces))
    return _train(context, config, home, mlflow, "age_model", publish)
