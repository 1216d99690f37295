"""Training: Adam, categorical cross-entropy (with the expected age's error, when weighted), early stopping, a
checkpoint each epoch, resumable.

The same code trains with any Keras backend (`KERAS_BACKEND`: tensorflow, the default, jax or torch), on the
CPU, one GPU or several (`model.devices`). TensorFlow reads the shards with `tf.data` (`model.input`); the other
backends with a PyDataset (`model.loader`), so that they train where TensorFlow is not installed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from agenet_pipeline.core.files import atomic_path, write_bytes
from agenet_pipeline.model.architecture import ModelConfig, build_model
from agenet_pipeline.model.devices import (
    accelerators,
    data_parallel,
    distribution_scope,
    precision_policy,
    uses_tf_data,
    without_tensorflow,
)
from agenet_pipeline.model.losses import training_loss
from agenet_pipeline.model.metrics import training_metrics

SCHEDULES = ("constant", "cosine")
WARMUP_EPOCHS = 2


class TrainingError(RuntimeError):
    """Training cannot start or did not produce a usable model; the message says why and what to change."""


@dataclass(frozen=True)
class TrainingConfig:
    learning_rate: float = 3e-4
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 4
    seed: int = 0
    augment: bool = True
    label_sigma: float | None = None
    mixed_precision: bool = False  # on a GPU: bfloat16 compute where it has it, else float16
    data_parallel: bool | None = None  # split batches over devices (None: when several GPUs are seen)
    loader_workers: int = 4  # threads decoding batches, for backends other than TensorFlow
    lr_plateau_patience: int | None = None  # epochs without improvement before the learning rate is cut to 0.3x
    schedule: str = "constant"  # or "cosine": a linear warm-up, then a cosine decay to 0 at max_epochs
    expected_age_weight: float = 0.0  # weight of the expected age's error (years) beside the cross-entropy
    greyscale: float = 0.0  # when augmenting: the chance that a training face is seen in grey, as scanned prints are

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.schedule == "cosine" and self.lr_plateau_patience:
            raise ValueError("a cosine schedule sets the learning rate of every epoch: set no lr_plateau_patience")
        if not 0 <= self.greyscale <= 1:
            raise ValueError(f"greyscale is a probability, not {self.greyscale}")


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    history: dict[str, list[float]]
    epochs: int
    resumed_at_epoch: int
    best_epoch: int


def check_training_set(bin_counts: Mapping[int, int], bins: int) -> None:
    """Refuse a training split that cannot teach the model anything, before any time is spent."""
    total = sum(bin_counts.values())
    if total == 0:
        raise TrainingError("the training split is empty: materialise the data assets with datasets that have faces")
    present = [b for b, n in bin_counts.items() if n > 0]
    if len(present) < 2:
        raise TrainingError(
            f"the training split has only one age bin ({present[0]}) in {bins}: "
            "a classifier needs examples of at least two bins"
        )


class _FailOnNaN(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingError(
                f"the loss became {loss} in epoch {self._epoch + 1}, batch {batch + 1}: training "
                "diverged; lower the learning rate or check the labels"
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


class EpochBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (a checkpoint each epoch, where an interrupted `fit` resumes), with each file
    written whole: Keras writes the weights and the epoch file in place, so a kill in the middle of a save would
    leave a truncated file that the next run fails to read, or reads as the last epoch's."""

    def _save_model(self):
        with atomic_path(Path(self._weights_path), suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        state = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        write_bytes(Path(self._training_metadata_path), json.dumps(state))


def save_model(model: keras.Model, path: Path) -> Path:
    """The network as a `.keras` file, written whole or not at all."""
    without_tensorflow()
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def train(
    model_config: ModelConfig,
    config: TrainingConfig,
    train_files: Sequence[str],
    validation_files: Sequence[str],
    checkpoint_dir: Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainingResult:
    """Train from TFRecord files; an interrupted call with the same `checkpoint_dir` resumes at its last epoch."""
    if not validation_files:
        raise TrainingError("no validation files: early stopping needs a validation split")
    without_tensorflow()
    keras.utils.set_random_seed(config.seed)
    devices = accelerators()
    keras.mixed_precision.set_global_policy(precision_policy(config.mixed_precision, devices))
    resumed = resumed_epoch(checkpoint_dir / "backup")
    train_data, validation_data = training_batches(model_config, config, train_files, validation_files, resumed)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    backup = EpochBackup(str(checkpoint_dir / "backup"), save_freq="epoch")
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    if config.lr_plateau_patience:
        plateau = keras.callbacks.ReduceLROnPlateau(factor=0.3, patience=config.lr_plateau_patience, min_lr=1e-5)
        callbacks = [plateau, *callbacks]
    if config.schedule == "cosine":
        callbacks = [keras.callbacks.LearningRateScheduler(lambda epoch: cosine_rate(config, epoch)), *callbacks]
    try:
        with distribution_scope(data_parallel(config.data_parallel, devices)):
            model = compiled_model(model_config, config)
            history = model.fit(
                train_data,
                validation_data=validation_data,
                epochs=config.max_epochs,
                verbose=2,
                callbacks=[backup, stopping, _FailOnNaN(), *callbacks],
            )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    losses = history.history.get("val_loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise TrainingError(f"validation loss is not finite ({losses}): training diverged")
    # Saved and registered copies then carry no project code (the loss, the metrics), so they load anywhere.
    model.compile(loss="categorical_crossentropy")
    return TrainingResult(
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        epochs=resumed + len(losses),
        resumed_at_epoch=resumed,
        best_epoch=resumed + int(np.argmin(losses)) + 1,
    )


def compiled_model(model_config: ModelConfig, config: TrainingConfig) -> keras.Model:
    model = build_model(model_config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=training_loss(model_config.output_bins, config.expected_age_weight),
        metrics=training_metrics(model_config.output_bins),
    )
    return model


def cosine_rate(config: TrainingConfig, epoch: int) -> float:
    """The learning rate of `epoch` (from 0): rising linearly over the warm-up epochs (a full-width network at
    1e-3 is unstable from its first steps), then a cosine from the full rate down to 0 at `max_epochs`."""
    if epoch < WARMUP_EPOCHS:
        return config.learning_rate * (epoch + 1) / (WARMUP_EPOCHS + 1)
    progress = (epoch - WARMUP_EPOCHS) / max(1, config.max_epochs - WARMUP_EPOCHS)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def training_batches(
    model_config: ModelConfig,
    config: TrainingConfig,
    train_files: Sequence[str],
    validation_files: Sequence[str],
    epoch: int = 0,
):
    """(training, validation) batches: `tf.data` on TensorFlow, a PyDataset on the other backends (starting its
    seeded order at `epoch`, where a resumed run starts)."""
    if uses_tf_data():
        from agenet_pipeline.model.input import batches

        loader = {}
    else:
        from agenet_pipeline.model.loader import TrainingBatches as batches

        loader = {"epoch": epoch, "workers": config.loader_workers}
    size, batch = model_config.input_size, config.batch_size
    labels = {"bins": model_config.output_bins, "label_sigma": config.label_sigma}
    shuffled = {"shuffle": True, "augment": config.augment, "greyscale": config.greyscale, "seed": config.seed}
    return (
        batches(train_files, size, batch, **labels, **shuffled, **loader),
        batches(validation_files, size, batch, **labels, **loader),
    )


def resumed_epoch(backup_dir: Path) -> int:
    """Epochs completed in a BackupAndRestore folder, where training resumes (0 when it holds no backup)."""
    state = backup_dir / "training_metadata.json"
    return int(json.loads(state.read_text())["epoch"]) if state.is_file() else 0
