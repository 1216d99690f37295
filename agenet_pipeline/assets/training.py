"""Training assets: the preliminary model, the IMDB subset it cleans, and the registered age model.

TensorFlow, Keras and MLflow are imported inside the assets: every Dagster step process imports this module,
and only the training steps need them.
"""

import dataclasses
import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, RetryPolicy, asset
from pydantic import Field

from agenet_pipeline.assets.labels import training_shards
from agenet_pipeline.assets.metadata import markdown_table
from agenet_pipeline.datasets.splits import content_hash
from agenet_pipeline.faces.storage import atomic_path, write_parquet
from agenet_pipeline.faces.tfrecords import shard_files, write_shards
from agenet_pipeline.model.bins import SEED_BINS
from agenet_pipeline.model.cleaning import keep, neighbourhood_mass
from agenet_pipeline.model.metrics import constant_guess
from agenet_pipeline.resources import AgeNetHome, MLflowResource

GROUP = "training"
APPA_UTK = ("utkface", "appa_real")
# Steps that put a model on the GPU share the pool `gpu` (limit 1, dagster.yaml), so that two never fight for one
# GPU's memory. A retry of a training resumes from its last epoch's checkpoint.
GPU_POOL = "gpu"
GPU_RETRY = RetryPolicy(max_retries=1, delay=30)


class ModelTrainingConfig(Config):
    """A recipe ('seed': the paper's; 'recommended': ours) and any settings to change in it."""

    recipe: str = Field(default="seed", description="'seed' (the paper's network and training) or 'recommended'")
    input_size: int | None = Field(default=None, description="Side of the square input in pixels (256)")
    filters: list[int] | None = Field(default=None, description="Filters per conv layer (64, 128, 256, 512, 1024)")
    kernel_size: int | None = Field(default=None, description="Convolution kernel size (3)")
    dense_units: list[int] | None = Field(default=None, description="Units per dense layer (256, 128)")
    dropout: float | None = Field(default=None, description="Dropout after each conv layer (0.187)")
    learning_rate: float | None = Field(default=None, description="Adam learning rate (3e-4)")
    lr_plateau_patience: int | None = Field(
        default=None, description="Epochs without validation improvement before the learning rate is cut to 0.3x"
    )
    batch_size: int | None = Field(default=None, description="Batch size (32)")
    max_epochs: int | None = Field(default=None, description="Epoch limit; early stopping usually ends sooner (30)")
    patience: int | None = Field(default=None, description="Epochs without validation improvement before stopping (4)")
    seed: int | None = Field(default=None, description="Seed of initialisation, shuffling and augmentation (0)")
    label_sigma: float | None = Field(default=None, description="Train on a label distribution this many years wide")
    mixed_precision: bool | None = Field(default=None, description="float16 compute on a GPU (off)")

    def recipe_with_changes(self):
        from agenet_pipeline.model.recipes import RECIPES

        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")
        recipe = RECIPES[self.recipe]
        network, training = _changed(recipe.network, self), _changed(recipe.training, self)
        return dataclasses.replace(recipe, network=network, training=training)


def _changed(settings, config: ModelTrainingConfig):
    """`settings` (a dataclass) with the fields that `config` sets."""
    changes = {}
    for field in dataclasses.fields(settings):
        value = getattr(config, field.name, None)
        if value is not None:
            changes[field.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(settings, **changes)


def _training_data(
    splits: pl.DataFrame, files: dict[str, list[Path]], datasets: tuple[str, ...], inputs: tuple[str, ...]
):
    """The shard files of `datasets` per split, checked to be trainable, with the lineage MLflow records:
    rows and a content hash per split and dataset."""
    from agenet_pipeline.model.experiment import TrainingData
    from agenet_pipeline.model.training import check_training_set

    train = splits.filter((pl.col("split") == "train") & pl.col("dataset").is_in(datasets))
    check_training_set(dict(train.group_by("bin").len().iter_rows()), len(SEED_BINS))
    sets = {split: [d for d in datasets if files.get(f"{split}-{d}")] for split in ("train", "validation", "test")}
    lineage = {}
    for split, names in sets.items():
        for name in names:
            rows = splits.filter((pl.col("split") == split) & (pl.col("dataset") == name))
            lineage[f"data.{split}.{name}.rows"] = str(rows.height)
            lineage[f"data.{split}.{name}.hash"] = content_hash(rows)
    split_files = (
        [str(f) for name in sets[split] for f in files[f"{split}-{name}"]] for split in ("train", "validation", "test")
    )
    return TrainingData(*split_files, lineage, inputs)


@contextmanager
def _final_on_training_error():
    """A TrainingError (an empty split, a diverged loss) fails the step for good: a retry would fail the same way."""
    from agenet_pipeline.model.training import TrainingError

    try:
        yield
    except TrainingError as error:
        raise Failure(str(error), allow_retries=False) from error


def _train(
    context: AssetExecutionContext,
    config: ModelTrainingConfig,
    home: AgeNetHome,
    mlflow: MLflowResource,
    name: str,
    splits: pl.DataFrame,
    files: dict[str, list[Path]],
    datasets: tuple[str, ...],
    inputs: tuple[str, ...],
    registered: str | None,
) -> MaterializeResult:
    from agenet_pipeline.model.experiment import tracked_training

    uri = mlflow.uri(home)
    tags = {"dagster.run_id": context.run_id, "dagster.asset": name}
    recipe = config.recipe_with_changes()
    with _final_on_training_error():
        data = _training_data(splits, files, datasets, inputs)
        # A resumed run must be the same training: same recipe, same data.
        same_training = hashlib.sha256(f"{recipe}|{sorted(data.lineage.items())}".encode()).hexdigest()[:12]
        run = tracked_training(
            uri,
            mlflow.experiment,
            mlflow.artifact_location(home),
            name,
            tags,
            recipe.network,
            recipe.training,
            data,
            home.checkpoint_folder(f"{name}/{same_training}"),
            registered,
        )
    model_path = home.model_path(name)
    with atomic_path(model_path, suffix=".keras") as tmp:
        run.result.model.save(tmp)
    record = {
        "run_id": run.run_id,
        "tracking_uri": uri,
        "model_path": str(model_path),
        "registered_model": run.version.name if run.version else None,
        "version": run.version.version if run.version else None,
        "datasets": list(datasets),
    }
    with atomic_path(home.model_record_path(name)) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    chance = constant_guess(_ages(splits, "train", datasets).to_numpy(), _ages(splits, "test", datasets).to_numpy())
    scores = run.test_scores
    table = pl.DataFrame(
        {
            "": ["model", "constant guess of the most frequent training bin"],
            "exact": [round(scores.exact, 3), round(chance.exact, 3)],
            "one-off": [round(scores.one_off, 3), round(chance.one_off, 3)],
            "MAE (years)": [round(scores.mae, 2), round(chance.mae, 2)],
        }
    )
    metadata = {
        "test scores": markdown_table(table),
        "test exact accuracy": scores.exact,
        "test MAE (years)": scores.mae,
        "test examples": scores.count,
        "epochs": run.result.epochs,
        "best epoch": run.result.best_epoch,
        "resumed at epoch": run.result.resumed_at_epoch,
        "mlflow run id": run.run_id,
        "mlflow tracking uri": uri,
        "mlflow ui": MetadataValue.text(f"mlflow ui --backend-store-uri {uri}"),
        "model file": MetadataValue.path(str(model_path)),
    }
    if run.version:
        metadata |= {
            "registered model": run.version.name,
            "model version": run.version.version,
            "model uri": MetadataValue.text(run.version.uri),
        }
    return MaterializeResult(metadata=metadata)


def _splits_and_files(home: AgeNetHome) -> tuple[pl.DataFrame, dict[str, list[Path]]]:
    splits = pl.read_parquet(home.splits_path)
    names = {f"{split}-{dataset}" for split, dataset in splits.select("split", "dataset").unique().iter_rows()}
    return splits, {name: shard_files(home.shards_folder, name) for name in names}


def _ages(splits: pl.DataFrame, split: str, datasets) -> pl.Series:
    return splits.filter((pl.col("split") == split) & pl.col("dataset").is_in(datasets))["age"]


@asset(group_name=GROUP, deps=[training_shards], kinds={"tensorflow", "mlflow"}, pool=GPU_POOL, retry_policy=GPU_RETRY)
def preliminary_model(
    context: AssetExecutionContext, config: ModelTrainingConfig, home: AgeNetHome, mlflow: MLflowResource
) -> MaterializeResult:
    """The paper's first network, trained on APPA-REAL and UTKFace only, to judge the noisy IMDB labels."""
    splits, files = _splits_and_files(home)
    return _train(
        context,
        config,
        home,
        mlflow,
        "preliminary_model",
        splits,
        files,
        APPA_UTK,
        ("training_shards",),
        registered=None,
    )


class CleaningConfig(Config):
    threshold: float = Field(
        default=0.40,
        description="Least probability the preliminary model must give the "
        "labelled bin and its two neighbours for an image to stay",
    )


@asset(
    group_name=GROUP, deps=[preliminary_model], kinds={"tensorflow", "parquet"}, pool=GPU_POOL, retry_policy=GPU_RETRY
)
def imdb_cleaned(context: AssetExecutionContext, config: CleaningConfig, home: AgeNetHome) -> MaterializeResult:
    """IMDB training and validation faces judged by the preliminary model; kept ones written as new shards.

    The test split is left as it is, so that the test scores are not flattered by the cleaning.
    """
    import keras

    from agenet_pipeline.model.predict import predict_files

    model = keras.models.load_model(home.model_path("preliminary_model"))
    splits, files = _splits_and_files(home)
    judged = []
    for split in ("train", "validation"):
        keys, probabilities = predict_files(model, [str(f) for f in files.get(f"{split}-imdb_wiki", [])])
        mass = neighbourhood_mass(probabilities, keys["bin"].to_numpy())
        judged.append(
            keys.with_columns(
                pl.lit(split).alias("split"),
                pl.Series("neighbourhood_mass", mass),
                pl.Series("kept", keep(probabilities, keys["bin"].to_numpy(), config.threshold)),
                pl.Series("probabilities", probabilities.tolist()),
            )
        )
    table = pl.concat(judged).join(splits.select("dataset", "row", "crop_bytes", "image_path"), on=["dataset", "row"])
    write_parquet(table, home.imdb_cleaned_path)
    for split in ("train", "validation"):
        kept = table.filter((pl.col("split") == split) & pl.col("kept"))
        write_shards(
            kept, "imdb_wiki", home.faces_folder("imdb_wiki"), home.cleaned_shards_folder, f"{split}-imdb_wiki"
        )
        context.log.info(f"{split}: kept {kept.height} of {table.filter(pl.col('split') == split).height}")
    per_bin = table.group_by("bin").agg(pl.len().alias("judged"), (~pl.col("kept")).sum().alias("dropped")).sort("bin")
    per_bin = per_bin.with_columns(pl.col("bin").replace_strict(range(len(SEED_BINS)), SEED_BINS.labels))
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "kept": int(table["kept"].sum()),
            "dropped": int((~table["kept"]).sum()),
            "threshold": config.threshold,
            "dropped per labelled bin": markdown_table(per_bin),
            "judged rows (with probabilities)": MetadataValue.path(str(home.imdb_cleaned_path)),
        }
    )


@asset(group_name=GROUP, deps=[imdb_cleaned], kinds={"tensorflow", "mlflow"}, pool=GPU_POOL, retry_policy=GPU_RETRY)
def age_model(
    context: AssetExecutionContext, config: ModelTrainingConfig, home: AgeNetHome, mlflow: MLflowResource
) -> MaterializeResult:
    """The age network on APPA-REAL, UTKFace and the cleaned IMDB subset, registered in MLflow."""

    splits, files = _splits_and_files(home)
    cleaned = pl.read_parquet(home.imdb_cleaned_path)
    dropped = cleaned.filter(~pl.col("kept")).select("dataset", "row")
    splits = splits.join(dropped, on=["dataset", "row"], how="anti")
    for split in ("train", "validation"):
        files[f"{split}-imdb_wiki"] = shard_files(home.cleaned_shards_folder, f"{split}-imdb_wiki")
    return _train(
        context,
        config,
        home,
        mlflow,
        "age_model",
        splits,
        files,
        (*APPA_UTK, "imdb_wiki"),
        ("training_shards", "imdb_cleaned"),
        registered=mlflow.registered_model,
    )
