"""The Adience protocol's training variant: fine-tune on four folds, test on the fifth, each fold in turn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import polars as pl
import tensorflow as tf

from agenet_pipeline.core.ages import network_bins
from agenet_pipeline.evaluation.adience import shared_users
from agenet_pipeline.model.batch_prediction import Predictions, concat, predict_files
from agenet_pipeline.model.input import batches
from agenet_pipeline.model.records import feature_spec


@dataclass(frozen=True)
class FineTuning:
    epochs: int = 2
    learning_rate: float = 1e-4
    batch_size: int = 32
    seed: int = 0


def split_by_fold(files: Sequence[str], fold_of_row: dict[int, int], folder: Path) -> dict[int, Path]:
    """Copy each record of `files` into `folder/fold-<k>.tfrecord` by its row's fold; rows without a fold
    are an error."""
    row_only = {"row": feature_spec()["row"]}
    writers: dict[int, tf.io.TFRecordWriter] = {}
    try:
        for record in tf.data.TFRecordDataset(list(files)):
            row = int(tf.io.parse_single_example(record, row_only)["row"])
            if row not in fold_of_row:
                raise ValueError(f"row {row} of the Adience shards {list(files)} has no fold in the splits table")
            fold = fold_of_row[row]
            if fold not in writers:
                writers[fold] = tf.io.TFRecordWriter(str(folder / f"fold-{fold}.tfrecord"))
            writers[fold].write(record.numpy())
    finally:
        for writer in writers.values():
            writer.close()
    return {fold: folder / f"fold-{fold}.tfrecord" for fold in sorted(writers)}


def _fine_tuned(model_path: Path, train_files: list[str], settings: FineTuning) -> keras.Model:
    keras.utils.set_random_seed(settings.seed)
    model = keras.models.load_model(model_path)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="categorical_crossentropy")
    data = batches(
        train_files,
        model.input_shape[1],
        settings.batch_size,
        shuffle=True,
        augment=True,
        seed=settings.seed,
        bins=network_bins(model.output_shape[-1]),
    )
    model.fit(data, epochs=settings.epochs, verbose=0)
    return model


def fine_tuned_predictions(
    model_path: Path, files: Sequence[str], faces: pl.DataFrame, settings: FineTuning, work_folder: Path
) -> tuple[Predictions, dict[int, str]]:
    """Per fold with faces: the model fine-tuned on the other folds, predicting that fold. Returns the
    predictions of every fold scored and, for each fold skipped, the reason."""
    shared = shared_users(faces)
    if not shared.is_empty():
        raise ValueError(
            f"{shared.height} Adience users (such as {shared['user_id'][0]}) have faces in several folds: "
            "fine-tuning on the other folds would test on people it trained on"
        )
    if not files:
        return concat([]), {}
    fold_files = split_by_fold(files, dict(faces.select("row", "fold").iter_rows()), work_folder)
    parts, skipped = [], {}
    for fold, test_file in fold_files.items():
        train_files = [str(path) for other, path in fold_files.items() if other != fold]
        if not train_files:
            skipped[fold] = "no faces in the other folds to fine-tune on, skipped"
            continue
        keys, probabilities = predict_files(_fine_tuned(model_path, train_files, settings), [str(test_file)])
        parts.append(Predictions(keys.with_columns(pl.lit("evaluation").alias("split")), probabilities))
    return concat(parts), skipped
