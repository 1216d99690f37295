"""One trained network scored on crops made with other face settings: the age model of each `--models` home on the test
and evaluation shards of each `--crops` home, through the evaluation's own code (its shard files, `predict_sets`,
`dataset_scores`, `mae_by_age`). Two homes that ran the same `full_job` with, say, `faces.context` 1.25 and null
(`quality.py` leaves one home per run) give a paired comparison: the same weights on faces cropped two ways, free of
the run-to-run spread that training adds.

    .venv/bin/python benchmarks/crop_scores.py --models HOME_A HOME_B --crops HOME_A HOME_B
    .venv/bin/python benchmarks/crop_scores.py --models HOME_A HOME_B --crops HOME_A --ensemble

With `--ensemble`, one more row per crops home scores the mean output of all the `--models` networks (two seeds of a
recipe, say): what training it again with another seed would buy. The networks must share a head.

A home is a project's `.agenet` folder. MAE in years first (all, 0-12, 60+), then exact and one-off accuracy, and
beside them the constant guess learned from the model home's training split (median training age, most frequent
training bin).
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import polars as pl

from agenet_pipeline.core.home import Home
from agenet_pipeline.evaluation.model_report import cross_source_files, model_record, test_files, training_ages
from agenet_pipeline.evaluation.scores import AGGREGATED, CHILDREN, OLD, dataset_scores, mae_by_age
from agenet_pipeline.faces.storage import face_settings_of
from agenet_pipeline.model.batch_prediction import Predictions, predict_sets
from agenet_pipeline.model.metrics import ConstantGuess

SPLITS = {"test": "test split", "evaluation": "evaluation (another source)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="homes whose age_model is scored")
    parser.add_argument("--crops", type=Path, nargs="+", required=True, help="homes whose shards it is scored on")
    parser.add_argument("--ensemble", action="store_true", help="also score the mean output of all the models")
    return parser.parse_args(argv)


@cache
def crop_settings(home: Home, dataset: str) -> str:
    """The margin and context that the dataset's faces in `home` were cropped with."""
    settings = face_settings_of(home.faces_folder(dataset))
    return json.dumps({"margin": settings.margin, "context": settings.context}) if settings else "unrecorded"


def _project(home: Home) -> str:
    """A home by its project folder's name (a home is usually `<project>/.agenet`)."""
    return home.root.parent.name if home.root.name == ".agenet" else str(home.root)


def _print_rows(model: str, crops_home: Home, predictions: Predictions, guess: ConstantGuess) -> None:
    scores = dataset_scores(predictions, guess).filter(pl.col("dataset") != AGGREGATED)
    groups = mae_by_age(predictions, guess)
    for row in scores.iter_rows(named=True):
        in_row = groups.filter((pl.col("split") == row["split"]) & (pl.col("dataset") == row["dataset"]))
        group_mae = [in_row.filter(pl.col("ages") == g)["mae"] for g in (CHILDREN, OLD)]
        cells = [model, _project(crops_home), row["dataset"]]
        cells += [crop_settings(crops_home, row["dataset"]), SPLITS.get(row["split"], row["split"])]
        cells += [row["examples"], f"{row['mae']:.2f}", *(f"{m[0]:.2f}" if len(m) else "-" for m in group_mae)]
        cells += [f"{row['exact']:.3f}", f"{row['one_off']:.3f}"]
        cells.append(f"{row['guess_mae']:.2f} / {row['guess_exact']:.3f} / {row['guess_one_off']:.3f}")
        print("| " + " | ".join(map(str, cells)) + " |")


def main(argv: list[str] | None = None) -> None:
    import keras

    args = parse_args(argv)
    columns = ["model", "crops", "dataset", "their face settings", "split", "examples", "MAE", "MAE 0-12", "MAE 60+"]
    print("| " + " | ".join([*columns, "exact", "one-off", "constant guess: MAE / exact / one-off"]) + " |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    model_homes, crops_homes = [Home.at(h) for h in args.models], [Home.at(h) for h in args.crops]
    outputs: dict[Home, list[Predictions]] = {home: [] for home in crops_homes}
    for model_home in model_homes:
        record = model_record(model_home)
        network = keras.saving.load_model(record.model_path, compile=False)
        splits = pl.read_parquet(model_home.splits_path)
        guess = ConstantGuess.of(training_ages(model_home, splits, record.datasets).to_numpy())
        for crops_home in crops_homes:
            files = {**test_files(crops_home, record.datasets), **cross_source_files(crops_home)}
            predictions = predict_sets(network, files)
            outputs[crops_home].append(predictions)
            _print_rows(_project(model_home), crops_home, predictions, guess)
    if args.ensemble:
        # The guess stays the last model's: an ensemble's members share their training split.
        members = " + ".join(map(_project, model_homes))
        for crops_home, each in outputs.items():
            if not all(p.keys.equals(each[0].keys) for p in each):
                raise SystemExit(f"the models scored other rows of {crops_home.root}: no ensemble")
            mean = Predictions(each[0].keys, sum(p.probabilities for p in each) / len(each))
            _print_rows(f"ensemble: {members}", crops_home, mean, guess)


if __name__ == "__main__":
    main()
