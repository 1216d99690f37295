"""The evaluation of a registered age model, end to end: predictions over the test split (and its training split),
the report with its figures beside it under the home, and the report and scores added to the model's MLflow run.

`score_file` is what the champion gate reads: the scores of exactly this run on exactly this test split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.core.datasets import CROSS_SOURCE
from agenet_pipeline.core.files import write_bytes, write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.datasets.splits import EVALUATION, content_hash
from agenet_pipeline.evaluation import report as markdown
from agenet_pipeline.evaluation.model_card import headline, model_card
from agenet_pipeline.evaluation.scores import CHILDREN, OLD, Evaluation, evaluate
from agenet_pipeline.model.batch_prediction import Predictions, predict_sets
from agenet_pipeline.model.records import shard_files, shard_name
from agenet_pipeline.model.training_sets import with_cleaned_imdb, without_dropped_imdb
from agenet_pipeline.tracking.champion import (
    Candidate,
    GateDecision,
    gate_metric,
    judge,
    rescoring_on,
    split_name,
    split_of_run,
)
from agenet_pipeline.tracking.registry import CARD_HEADLINE_TAG
from agenet_pipeline.tracking.runs import ModelRecord, log_report
from agenet_pipeline.tracking.store import connect

MODEL = "age_model"
METRICS = ("exact", "one_off", "mae")


@dataclass(frozen=True)
class EvaluationSettings:
    include_train: bool = True  # the paper's Table 4 has train and test columns
    calibration_intervals: int = 10
    feature_maps_per_layer: int = 6


def model_record(home: Home) -> ModelRecord:
    return ModelRecord.load(home.model_record_path(MODEL), MODEL)


def test_hashes(splits: pl.DataFrame, datasets) -> dict[str, str]:
    """The test split's identity as training runs record it: a content hash of each dataset's test rows."""
    test = splits.filter(pl.col("split") == "test")
    return {d: content_hash(rows) for d in datasets if not (rows := test.filter(pl.col("dataset") == d)).is_empty()}


def test_files(home: Home, datasets) -> dict[tuple[str, str], list[Path]]:
    return {("test", d): shard_files(home.shards_folder, shard_name("test", d)) for d in datasets}


def cross_source_files(home: Home) -> dict[tuple[str, str], list[Path]]:
    """The shards of datasets from another source (FG-NET): never trained on, scored beside the test split."""
    return {(EVALUATION, d): shard_files(home.shards_folder, shard_name(EVALUATION, d)) for d in CROSS_SOURCE}


def _train_files(home: Home, datasets) -> dict[tuple[str, str], list[Path]]:
    """The training shards the age model trained on: IMDB's are the cleaned ones."""
    names = {d: shard_name("train", d) for d in datasets}
    files = with_cleaned_imdb(home, {name: shard_files(home.shards_folder, name) for name in names.values()})
    return {("train", d): files[name] for d, name in names.items()}


def training_ages(home: Home, splits: pl.DataFrame, datasets) -> pl.Series:
    """Ages of the rows the age model trained on (the IMDB rows the cleaning dropped left out)."""
    if home.imdb_cleaned_path.is_file():
        splits = without_dropped_imdb(home, splits)
    return splits.filter((pl.col("split") == "train") & pl.col("dataset").is_in(list(datasets)))["age"]


def facts(record: ModelRecord) -> dict[str, str]:
    return {
        "model": f"{MODEL} (`{record.model_path}`)",
        "registered version": f"{record.registered_model} version {record.version}",
        "MLflow run": f"{record.run_id} in {record.tracking_uri}",
    }


def _run_metrics(evaluation: Evaluation) -> dict[str, float]:
    metrics = {"eval_test_ece": evaluation.calibration.ece}
    for row in evaluation.scores.iter_rows(named=True):
        for metric in METRICS:
            prefix = f"eval_{row['split']}_{row['dataset']}"
            metrics[f"{prefix}_{metric}"] = row[metric]
            metrics[f"{prefix}_{metric}_constant_guess"] = row[f"guess_{metric}"]
    for row in evaluation.by_age.filter(pl.col("ages").is_in([CHILDREN, OLD])).iter_rows(named=True):
        prefix = f"eval_{row['split']}_{row['dataset']}_mae_{row['ages'].replace('-', '_').replace('+', '_plus')}"
        metrics[prefix] = row["mae"]
        metrics[f"{prefix}_constant_guess"] = row["guess_mae"]
    return metrics


def _figures(model, evaluation: Evaluation, files: list[str], per_layer: int) -> dict[str, bytes]:
    from agenet_pipeline.evaluation import figures
    from agenet_pipeline.evaluation.feature_maps import feature_maps, sample_face

    face = sample_face(files, model.input_shape[1])
    return {
        "confusion_matrix.png": figures.confusion_figure(evaluation.confusion, SEED_BINS.labels, "test split"),
        "reliability.png": figures.reliability_figure(evaluation.calibration, "test split"),
        "feature_maps.png": figures.feature_maps_figure(face, feature_maps(model, face, per_layer), "a test face"),
    }


@dataclass(frozen=True)
class ModelEvaluation:
    record: ModelRecord
    evaluation: Evaluation
    predictions: Predictions
    title: str
    facts: dict[str, str]
    images: dict[str, bytes]
    folder: Path
    report_path: Path
    card: str

    def text(self, images_inline: bool = False) -> str:
        link = markdown.inline(self.images) if images_inline else markdown.linked_files
        return markdown.evaluation_report(self.title, self.facts, self.evaluation, link)

    @property
    def warning(self) -> str | None:
        return self.facts.get("warning")


def score_file(home: Home) -> Path:
    return home.report_folder(MODEL, "report") / "scores.json"


def evaluate_model(home: Home, settings: EvaluationSettings = EvaluationSettings()) -> ModelEvaluation:
    """Score the age model, write its report, figures, predictions and scores under the home, and add them to
    its MLflow run."""
    import keras

    record = model_record(home)
    splits = pl.read_parquet(home.splits_path)
    model = keras.models.load_model(record.model_path)
    tests = test_files(home, record.datasets)
    files = {
        **tests,
        **cross_source_files(home),
        **(_train_files(home, record.datasets) if settings.include_train else {}),
    }
    predictions = predict_sets(model, files)
    evaluation = evaluate(
        predictions,
        training_ages(home, splits, record.datasets).to_numpy(),
        splits.filter(pl.col("dataset") == "utkface"),
        calibration_intervals=settings.calibration_intervals,
    )
    images = _figures(
        model, evaluation, [str(f) for paths in tests.values() for f in paths], settings.feature_maps_per_layer
    )
    hashes = test_hashes(splits, record.datasets)
    client = connect(record.tracking_uri)
    found = facts(record) | {"test split": split_name(hashes)}
    if split_of_run(client.get_run(record.run_id).data.params) != hashes:
        found["warning"] = (
            "the model was trained with another split (its MLflow run records other test hashes): "
            "these test rows may include images it trained on; train it again on the current splits"
        )
    folder = home.report_folder(MODEL, "report")
    run = client.get_run(record.run_id).data
    card = model_card(
        str(record.registered_model),
        str(record.version),
        run.params,
        run.tags,
        evaluation,
    )
    result = ModelEvaluation(
        record,
        evaluation,
        predictions,
        f"Evaluation of {record.registered_model} version {record.version}",
        found,
        images,
        folder,
        folder / "report.md",
        card,
    )
    write_bytes(result.report_path, result.text())
    write_bytes(folder / "model_card.md", card)
    for name, png in images.items():
        write_bytes(folder / name, png)
    write_parquet(predictions.table(), folder / "predictions.parquet")
    test = {m: evaluation.test_score(m) for m in METRICS}
    summary = {"run_id": record.run_id, "version": record.version, "test_split": hashes, "test": test}
    write_bytes(score_file(home), json.dumps(summary, indent=2))
    log_report(
        client,
        record.run_id,
        folder,
        "evaluation",
        _run_metrics(evaluation),
        {
            "evaluation.test_split": split_name(hashes),
            CARD_HEADLINE_TAG: headline(str(record.version), run.tags, evaluation),
        },
    )
    return result


def gate_age_model(home: Home, registered_name: str, metric_name: str) -> GateDecision:
    """The champion gate for the evaluated age model: its evaluation's test score against the champion's on the
    same test split (the champion re-scored on it when it was tested on another)."""
    metric = gate_metric(metric_name)
    record = model_record(home)
    if record.version is None or record.registered_model != registered_name:
        raise ValueError(
            f"{home.model_record_path(MODEL)} names no version of the registered model {registered_name!r} "
            f"(it names {record.registered_model!r}): materialise {MODEL} with this mlflow resource"
        )
    path = score_file(home)
    scores = json.loads(path.read_text())
    if scores["run_id"] != record.run_id:
        raise RuntimeError(f"{path} scores run {scores['run_id']}, not {record.run_id}: re-evaluate")
    files = [str(f) for paths in test_files(home, scores["test_split"]).values() for f in paths]
    client = connect(record.tracking_uri)
    candidate = Candidate(
        registered_name, str(record.version), record.run_id, scores["test"][metric.name], scores["test_split"]
    )
    return judge(client, candidate, metric, rescoring_on(client, files, metric))
