"""One trained network scored on crops made with other face settings: the age model of each `--models` home on the
test and evaluation shards of each `--crops` home, through the evaluation's own prediction path
(`model.batch_prediction.predict_files`). Two homes that ran the same `full_job` with, say, `faces.context` 1.25
and null (`quality.py` leaves one home per run) give a paired comparison: the same weights on faces cropped two
ways, free of the run-to-run spread that training adds.

    .venv/bin/python benchmarks/crop_scores.py --models HOME_A HOME_B --crops HOME_A HOME_B

A home is a project's `.agenet` folder. MAE in years first (all, 0-12, 60+), then exact and one-off accuracy, and
beside them the constant guess learned from the model home's training split (median training age, most frequent
training bin).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import expected_age
from agenet_pipeline.core.home import Home
from agenet_pipeline.faces.storage import face_settings_of
from agenet_pipeline.model.batch_prediction import predict_files
from agenet_pipeline.model.metrics import ConstantGuess, score

SPLITS = {"test": "test split", "evaluation": "evaluation (another source)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="homes whose age_model is scored")
    parser.add_argument("--crops", type=Path, nargs="+", required=True, help="homes whose shards it is scored on")
    return parser.parse_args(argv)


def crop_settings(home: Home, files: list[str]) -> str:
    """The margin and context that the datasets of `files` (`split-dataset-NNNNN-of-NNNNN.tfrecord`) were cropped
    with."""
    found = {}
    for dataset in sorted({Path(f).name.split("-")[1] for f in files}):
        settings = face_settings_of(home.faces_folder(dataset))
        found[dataset] = {"margin": settings.margin, "context": settings.context} if settings else "unrecorded"
    return json.dumps(found)


def _project(home: Home) -> str:
    """A home by its project folder's name (a home is usually `<project>/.agenet`)."""
    return home.root.parent.name if home.root.name == ".agenet" else str(home.root)


def main(argv: list[str] | None = None) -> None:
    import keras

    args = parse_args(argv)
    columns = ["model", "crops", "their face settings", "split", "examples", "MAE", "MAE 0-12", "MAE 60+", "exact"]
    print("| " + " | ".join([*columns, "one-off", "constant guess: MAE / exact / one-off"]) + " |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model_home in map(Home.at, args.models):
        network = keras.saving.load_model(model_home.model_path("age_model"), compile=False)
        splits = pl.read_parquet(model_home.splits_path, columns=["split", "age"])
        guess = ConstantGuess.of(splits.filter(pl.col("split") == "train")["age"].to_numpy())
        for crops_home in map(Home.at, args.crops):
            for split, name in SPLITS.items():
                files = sorted(str(f) for f in crops_home.shards_folder.glob(f"{split}-*.tfrecord"))
                if not files:
                    continue
                keys, probabilities = predict_files(network, files)
                ages = keys["age"].to_numpy()
                errors = np.abs(expected_age(probabilities) - ages)
                scores = score(probabilities, ages)
                groups = [f"{errors[m].mean():.2f}" if m.any() else "-" for m in (ages < 13, ages >= 60)]
                cells = [_project(model_home), _project(crops_home), crop_settings(crops_home, files), name, len(ages)]
                cells += [f"{scores.mae:.2f}", *groups, f"{scores.exact:.3f}", f"{scores.one_off:.3f}"]
                floor = guess.scores(ages)
                cells.append(f"{floor.mae:.2f} / {floor.exact:.3f} / {floor.one_off:.3f}")
                print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
