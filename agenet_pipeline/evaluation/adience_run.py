"""The Adience benchmark of the registered age model, end to end: as trained and, when asked, fine-tuned on the
other four folds; the report beside it under the home and in the model's MLflow run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from agenet_pipeline.core.files import write_bytes, write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.datasets.splits import EVALUATION
from agenet_pipeline.evaluation import report as markdown
from agenet_pipeline.evaluation.adience import Benchmark, benchmark
from agenet_pipeline.evaluation.finetune import FineTuning, fine_tuned_predictions
from agenet_pipeline.evaluation.model_report import MODEL, facts, model_record
from agenet_pipeline.model.batch_prediction import predict_sets
from agenet_pipeline.model.records import shard_files, shard_name
from agenet_pipeline.tracking.runs import log_report
from agenet_pipeline.tracking.store import connect

SUMMARY_COLUMNS = ("exact_mean", "exact_std", "one_off_mean", "one_off_std", "guess_exact_mean")
VARIANT_TITLES = {"as_trained": "The model as trained", "fine_tuned": "Fine-tuned on the other four folds"}


@dataclass(frozen=True)
class AdienceRun:
    variants: dict[str, Benchmark]  # by VARIANT_TITLES' keys
    text: str
    report_path: Path

    @property
    def as_trained(self) -> Benchmark:
        return self.variants["as_trained"]


def _metrics(variants: dict[str, Benchmark]) -> dict[str, float]:
    metrics = {}
    for variant, result in variants.items():
        for row in result.summary.iter_rows(named=True):
            mapping = row["mapping"].replace(" ", "_")
            for column in SUMMARY_COLUMNS:
                if row[column] is not None:
                    metrics[f"adience_{variant}_{mapping}_{column}"] = row[column]
    return metrics


def run_adience_benchmark(home: Home, fine_tuning: FineTuning | None = None) -> AdienceRun | None:
    """The benchmark, or None when there are no Adience faces to score (Adience not configured)."""
    import keras

    record = model_record(home)
    splits = pl.read_parquet(home.splits_path)
    faces = splits.filter((pl.col("dataset") == "adience") & (pl.col("split") == EVALUATION))
    if faces.is_empty():
        return None
    files = shard_files(home.shards_folder, shard_name(EVALUATION, "adience"))
    predictions = predict_sets(keras.models.load_model(record.model_path), {(EVALUATION, "adience"): files})
    variants = {"as_trained": benchmark(predictions, faces)}
    folder = home.report_folder(MODEL, "adience")
    if fine_tuning:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            tuned, skipped = fine_tuned_predictions(
                Path(record.model_path), [str(f) for f in files], faces, fine_tuning, Path(work)
            )
        variants["fine_tuned"] = benchmark(tuned, faces, skipped)
    title = f"Adience benchmark of {record.registered_model} version {record.version}"
    text = markdown.adience_report(
        title,
        facts(record) | {"Adience faces": str(faces.height)},
        {VARIANT_TITLES[name]: result for name, result in variants.items()},
    )
    report = write_bytes(folder / "adience.md", text)
    folds = pl.concat([result.folds.with_columns(pl.lit(v).alias("variant")) for v, result in variants.items()])
    write_parquet(folds, folder / "folds.parquet")
    write_parquet(predictions.table(), folder / "predictions.parquet")
    log_report(connect(record.tracking_uri), record.run_id, folder, "adience_benchmark", _metrics(variants))
    return AdienceRun(variants, text, report)
