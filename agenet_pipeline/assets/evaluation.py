"""Evaluation assets: the age model's report, the Adience benchmark, and the gate to the `champion` alias.

Each reads the JSON record the age_model asset leaves (its MLflow run, registered version and Keras file), adds
its report to that run and shows it in the Dagster UI. TensorFlow, Keras and MLflow are imported inside the
assets: every Dagster step process imports this module.
"""

import json
import tempfile
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from agenet_pipeline.assets.metadata import markdown_table
from agenet_pipeline.assets.training import GPU_POOL, age_model
from agenet_pipeline.datasets.splits import EVALUATION, content_hash
from agenet_pipeline.faces.storage import atomic_path, write_parquet
from agenet_pipeline.faces.tfrecords import shard_files
from agenet_pipeline.resources import AgeNetHome, MLflowResource

GROUP = "evaluation"
MODEL = "age_model"


def _record(home: AgeNetHome) -> dict:
    path = home.model_record_path(MODEL)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: materialise {MODEL} first")
    return json.loads(path.read_text())


def _report_folder(home: AgeNetHome, part: str) -> Path:
    return home.root / "evaluation" / MODEL / part


def _write(path: Path, content: bytes | str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _test_hashes(splits: pl.DataFrame, datasets: list[str]) -> dict[str, str]:
    """The test split's identity as training runs record it: a content hash of each dataset's test rows."""
    test = splits.filter(pl.col("split") == "test")
    return {d: content_hash(rows) for d in datasets if not (rows := test.filter(pl.col("dataset") == d)).is_empty()}


def _test_files(home: AgeNetHome, datasets) -> dict[tuple[str, str], list[Path]]:
    return {("test", d): shard_files(home.shards_folder, f"test-{d}") for d in datasets}


def _train_files(home: AgeNetHome, datasets) -> dict[tuple[str, str], list[Path]]:
    # The age model trained on the cleaned IMDB rows, which have their own shards.
    folder = {"imdb_wiki": home.cleaned_shards_folder}
    return {("train", d): shard_files(folder.get(d, home.shards_folder), f"train-{d}") for d in datasets}


def _training_ages(home: AgeNetHome, splits: pl.DataFrame, datasets) -> pl.Series:
    """Ages of the rows the age model trained on (the IMDB rows the cleaning dropped left out)."""
    train = splits.filter((pl.col("split") == "train") & pl.col("dataset").is_in(datasets))
    if home.imdb_cleaned_path.is_file():
        dropped = pl.read_parquet(home.imdb_cleaned_path).filter(~pl.col("kept")).select("dataset", "row")
        train = train.join(dropped, on=["dataset", "row"], how="anti")
    return train["age"]


def _facts(record: dict, uri: str) -> dict[str, str]:
    return {
        "model": f"{MODEL} (`{record['model_path']}`)",
        "registered version": f"{record['registered_model']} version {record['version']}",
        "MLflow run": f"{record['run_id']} in {uri}",
    }


class EvaluationConfig(Config):
    include_train: bool = Field(
        default=True,
        description="Score the training split too (the paper's Table 4 has train and test columns); "
        "off saves a pass over the training data",
    )
    calibration_intervals: int = Field(default=10, description="Confidence intervals of the calibration (ECE)")
    feature_maps_per_layer: int = Field(default=6, description="Feature maps shown per conv layer")


def _run_metrics(scores: pl.DataFrame, ece: float) -> dict[str, float]:
    metrics = {"eval_test_ece": ece}
    for row in scores.iter_rows(named=True):
        for metric in ("exact", "one_off", "mae"):
            prefix = f"eval_{row['split']}_{row['dataset']}"
            metrics[f"{prefix}_{metric}"] = row[metric]
            metrics[f"{prefix}_{metric}_constant_guess"] = row[f"guess_{metric}"]
    return metrics


def _figures(model, evaluation, test_files: list[str], per_layer: int) -> dict[str, bytes]:
    from agenet_pipeline.evaluation import figures
    from agenet_pipeline.evaluation.feature_maps import feature_maps, sample_face
    from agenet_pipeline.model.bins import SEED_BINS

    face = sample_face(test_files, model.input_shape[1])
    return {
        "confusion_matrix.png": figures.confusion_figure(evaluation.confusion, SEED_BINS.labels, "test split"),
        "reliability.png": figures.reliability_figure(evaluation.calibration, "test split"),
        "feature_maps.png": figures.feature_maps_figure(face, feature_maps(model, face, per_layer), "a test face"),
    }


def _save_report(folder: Path, text: str, images: dict[str, bytes], predictions, summary: dict) -> Path:
    """The report with its figures, every prediction, and the scores the champion gate reads."""
    report = _write(folder / "report.md", text)
    for name, png in images.items():
        _write(folder / name, png)
    write_parquet(predictions.table(), folder / "predictions.parquet")
    _write(folder / "scores.json", json.dumps(summary, indent=2))
    return report


# Steps that load a model share the training steps' pool, so that two never hold one GPU's memory at once.
@asset(group_name=GROUP, deps=[age_model], kinds={"tensorflow", "mlflow"}, pool=GPU_POOL)
def age_model_evaluation(
    context: AssetExecutionContext, config: EvaluationConfig, home: AgeNetHome
) -> MaterializeResult:
    """The age model on the fixed test split (and its training split): scores per dataset beside a constant
    guess, confusion matrix, precision and recall per bin, calibration, UTKFace gaps by gender and race,
    feature maps; a markdown report, also added to the model's MLflow run."""
    import keras

    from agenet_pipeline.evaluation import markdown
    from agenet_pipeline.evaluation.champion import split_name, split_of_run
    from agenet_pipeline.evaluation.predictions import predict_sets
    from agenet_pipeline.evaluation.report import evaluate
    from agenet_pipeline.evaluation.runs import client_for, log_report

    record = _record(home)
    datasets = record["datasets"]
    splits = pl.read_parquet(home.splits_path)
    model = keras.models.load_model(record["model_path"])
    test_files = _test_files(home, datasets)
    files = {**test_files, **(_train_files(home, datasets) if config.include_train else {})}
    predictions = predict_sets(model, files)
    evaluation = evaluate(
        predictions,
        _training_ages(home, splits, datasets).to_numpy(),
        splits.filter(pl.col("dataset") == "utkface"),
        calibration_intervals=config.calibration_intervals,
    )
    test_paths = [str(f) for paths in test_files.values() for f in paths]
    images = _figures(model, evaluation, test_paths, config.feature_maps_per_layer)
    hashes = _test_hashes(splits, datasets)
    client = client_for(record["tracking_uri"])
    facts = _facts(record, record["tracking_uri"]) | {"test split": split_name(hashes)}
    if split_of_run(client.get_run(record["run_id"]).data.params) != hashes:
        facts["warning"] = (
            "the model was trained with another split (its MLflow run records other test hashes): "
            "these test rows may include images it trained on; train it again on the current splits"
        )
        context.log.warning(facts["warning"])
    title = f"Evaluation of {record['registered_model']} version {record['version']}"
    folder = _report_folder(home, "report")
    test_scores = {m: evaluation.test_score(m) for m in ("exact", "one_off", "mae")}
    summary = {"run_id": record["run_id"], "version": record["version"], "test_split": hashes, "test": test_scores}
    text = markdown.evaluation_report(title, facts, evaluation, markdown.linked_files)
    report = _save_report(folder, text, images, predictions, summary)

    log_report(
        client,
        record["run_id"],
        folder,
        "evaluation",
        _run_metrics(evaluation.scores, evaluation.calibration.ece),
        {"evaluation.test_split": split_name(hashes)},
    )
    context.log.info(f"report added to MLflow run {record['run_id']} under evaluation/")
    gaps = {
        f"UTKFace largest {markdown.GAP_NAMES[gap.metric]} gap by {groups.attribute}": MetadataValue.float(gap.gap)
        for groups in evaluation.groups
        for gap in groups.gaps
    }
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(markdown.evaluation_report(title, facts, evaluation, markdown.inline(images))),
            "test MAE (years)": test_scores["mae"],
            "test MAE, constant guess": evaluation.test_score("guess_mae"),
            "test exact accuracy": test_scores["exact"],
            "test exact accuracy, constant guess": evaluation.test_score("guess_exact"),
            "test one-off accuracy": test_scores["one_off"],
            "test one-off accuracy, constant guess": evaluation.test_score("guess_one_off"),
            "test expected calibration error": evaluation.calibration.ece,
            **gaps,
            "test examples": int((predictions.keys["split"] == "test").sum()),
            "model version": str(record["version"]),
            "mlflow run id": record["run_id"],
            "report file": MetadataValue.path(str(report)),
            "report folder (figures, predictions)": MetadataValue.path(str(folder)),
        }
    )


class AdienceConfig(Config):
    fine_tune: bool = Field(
        default=False, description="Also fine-tune on four folds and test on the fifth, each fold in turn"
    )
    fine_tune_epochs: int = Field(default=2, description="Epochs of fine-tuning per fold")
    fine_tune_learning_rate: float = Field(default=1e-4, description="Adam learning rate of the fine-tuning")
    batch_size: int = Field(default=32, description="Batch size of the fine-tuning")


def _benchmark_metrics(variant: str, summary: pl.DataFrame) -> dict[str, float]:
    metrics = {}
    for row in summary.iter_rows(named=True):
        mapping = row["mapping"].replace(" ", "_")
        for column in ("exact_mean", "exact_std", "one_off_mean", "one_off_std", "guess_exact_mean"):
            if row[column] is not None:
                metrics[f"adience_{variant}_{mapping}_{column}"] = row[column]
    return metrics


@asset(group_name=GROUP, deps=[age_model], kinds={"tensorflow", "mlflow"}, pool=GPU_POOL)
def adience_benchmark(context: AssetExecutionContext, config: AdienceConfig, home: AgeNetHome) -> MaterializeResult:
    """The standard Adience protocol over its five subject-exclusive folds: exact and one-off accuracy per
    fold, their mean and spread, beside always guessing 25-32; optionally fine-tuned on the other folds."""
    import keras

    from agenet_pipeline.evaluation import markdown
    from agenet_pipeline.evaluation.adience import benchmark
    from agenet_pipeline.evaluation.finetune import FineTuning, fine_tuned_predictions
    from agenet_pipeline.evaluation.predictions import predict_sets
    from agenet_pipeline.evaluation.runs import client_for, log_report

    record = _record(home)
    splits = pl.read_parquet(home.splits_path)
    faces = splits.filter((pl.col("dataset") == "adience") & (pl.col("split") == EVALUATION))
    files = shard_files(home.shards_folder, f"{EVALUATION}-adience")
    model = keras.models.load_model(record["model_path"])
    predictions = predict_sets(model, {(EVALUATION, "adience"): files})
    variants = {"as_trained": ("The model as trained", benchmark(predictions, faces))}
    folder = _report_folder(home, "adience")
    if config.fine_tune:
        settings = FineTuning(config.fine_tune_epochs, config.fine_tune_learning_rate, config.batch_size)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            tuned, skipped = fine_tuned_predictions(
                Path(record["model_path"]), [str(f) for f in files], faces, settings, Path(work)
            )
        variants["fine_tuned"] = ("Fine-tuned on the other four folds", benchmark(tuned, faces, skipped))
    for name, result in variants.values():
        for note in result.notes:
            context.log.info(f"Adience, {name.lower()}: {note}")

    title = f"Adience benchmark of {record['registered_model']} version {record['version']}"
    facts = _facts(record, record["tracking_uri"]) | {"Adience faces": str(faces.height)}
    text = markdown.adience_report(title, facts, {name: result for name, result in variants.values()})
    report = _write(folder / "adience.md", text)
    folds = pl.concat([result.folds.with_columns(pl.lit(v).alias("variant")) for v, (_, result) in variants.items()])
    write_parquet(folds, folder / "folds.parquet")
    write_parquet(predictions.table(), folder / "predictions.parquet")
    metrics = {k: v for variant, (_, r) in variants.items() for k, v in _benchmark_metrics(variant, r.summary).items()}
    log_report(client_for(record["tracking_uri"]), record["run_id"], folder, "adience_benchmark", metrics)

    as_trained = variants["as_trained"][1]
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(text),
            "folds scored": as_trained.folds["fold"].n_unique(),
            "notes": MetadataValue.md("".join(f"- {n}\n" for n in as_trained.notes) or "none"),
            "exact accuracy, mean over folds (bin mass)": _float(as_trained.mean("bin mass", "exact")),
            "one-off accuracy, mean over folds (bin mass)": _float(as_trained.mean("bin mass", "one_off")),
            "exact accuracy, mean over folds (expected age)": _float(as_trained.mean("expected age", "exact")),
            "exact accuracy, constant guess 25-32": _float(as_trained.mean("bin mass", "guess_exact")),
            "one-off accuracy, constant guess 25-32": _float(as_trained.mean("bin mass", "guess_one_off")),
            "per fold": markdown_table(as_trained.folds),
            "report file": MetadataValue.path(str(report)),
        }
    )


def _float(value: float | None) -> MetadataValue:
    return MetadataValue.float(float("nan") if value is None else value)


class ChampionConfig(Config):
    metric: str = Field(
        default="mae",
        description="Test score that decides: 'mae' (lower is better), 'exact' or 'one_off' (higher is better)",
    )


@asset(group_name=GROUP, deps=[age_model_evaluation], kinds={"mlflow"})
def champion_gate(
    context: AssetExecutionContext, config: ChampionConfig, home: AgeNetHome, mlflow: MLflowResource
) -> MaterializeResult:
    """The new version becomes `champion` only when it beats the champion on the same test split; else
    `challenger`. The decision, with both scores, is recorded on the version and its MLflow run."""
    from agenet_pipeline.evaluation.champion import champion_gate as gate
    from agenet_pipeline.evaluation.champion import gate_metric
    from agenet_pipeline.evaluation.runs import client_for

    metric = gate_metric(config.metric)
    record = _record(home)
    name = mlflow.registered_model
    if record["version"] is None or record["registered_model"] != name:
        raise ValueError(
            f"{home.model_record_path(MODEL)} names no version of the registered model {name!r} "
            f"(it names {record['registered_model']!r}): materialise {MODEL} with this mlflow resource"
        )
    scores_path = _report_folder(home, "report") / "scores.json"
    scores = json.loads(scores_path.read_text())
    if scores["run_id"] != record["run_id"]:
        raise RuntimeError(f"{scores_path} scores run {scores['run_id']}, not {record['run_id']}: re-evaluate")
    test_files = [str(f) for paths in _test_files(home, scores["test_split"]).values() for f in paths]
    client = client_for(record["tracking_uri"])

    def rescore(champion) -> float:
        from agenet_pipeline.evaluation.predictions import predict_sets
        from agenet_pipeline.evaluation.runs import keras_model_of_run
        from agenet_pipeline.model.metrics import score

        context.log.info(f"re-scoring champion version {champion.version} on the current test split")
        predictions = predict_sets(keras_model_of_run(client, champion.run_id), {("test", "all"): test_files})
        return getattr(score(predictions.probabilities, predictions.ages), metric.name)

    decision = gate(
        client,
        name,
        str(record["version"]),
        record["run_id"],
        scores["test"][metric.name],
        metric,
        scores["test_split"],
        rescore,
    )
    context.log.info(f"version {decision.version} is {decision.alias}: {decision.reason}")
    table = pl.DataFrame(
        {
            "": [f"version {decision.version} (this one)", f"champion before: {decision.champion_version or 'none'}"],
            metric.name: [decision.score, decision.champion_score],
        },
        strict=False,
    )
    return MaterializeResult(
        metadata={
            "decision": decision.alias,
            "reason": decision.reason,
            "scores": markdown_table(table),
            "metric": metric.name,
            "model version": decision.version,
            "score": decision.score,
            "champion version before": decision.champion_version or "none",
            "champion score": _float(decision.champion_score),
            "champion scored": decision.champion_scored or "-",
            "test split": decision.test_split,
            "model uri": MetadataValue.text(f"models:/{name}@{decision.alias}"),
        }
    )
