import dataclasses
import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from agenet_pipeline.core.ages import YEARS
from agenet_pipeline.model.architecture import SEED
from agenet_pipeline.model.input import batches
from agenet_pipeline.model.losses import training_loss
from agenet_pipeline.model.metrics import training_metrics
from agenet_pipeline.model.recipes import RECIPES
from agenet_pipeline.model.training import TrainingConfig, TrainingError, check_training_set, train

TINY = dataclasses.replace(SEED, input_size=32, filters=(8, 16), dense_units=(16,))
FAST = TrainingConfig(max_epochs=3, batch_size=8, learning_rate=1e-3)

# Trains TINY for three epochs; with a kill epoch, the process kills itself (SIGKILL) in that epoch's second batch.
TRAINER = textwrap.dedent("""
    import dataclasses, json, os, signal, sys
    from pathlib import Path
    import keras
    from agenet_pipeline.model.architecture import SEED
    from agenet_pipeline.model.training import TrainingConfig, train

    train_files, validation_files, folder, kill_epoch = json.loads(sys.argv[1])

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_epoch and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    model = dataclasses.replace(SEED, input_size=32, filters=(8, 16), dense_units=(16,))
    result = train(model, TrainingConfig(max_epochs=3, batch_size=8, patience=10), train_files, validation_files,
                   Path(folder), callbacks=[Kill()])
    print(json.dumps({"resumed_at_epoch": result.resumed_at_epoch, "epochs": result.epochs,
                      "history_epochs": len(result.history["loss"])}))
""")


def run_trainer(records, folder, kill_epoch):
    arguments = json.dumps([records["train"], records["validation"], str(folder), kill_epoch])
    return subprocess.run(
        [sys.executable, "-c", TRAINER, arguments], capture_output=True, text=True, timeout=300, check=False
    )


def test_killed_training_resumes_from_its_last_checkpoint(records, tmp_path):
    killed = run_trainer(records, tmp_path, kill_epoch=1)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1

    resumed = run_trainer(records, tmp_path, kill_epoch=-1)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    outcome = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert outcome == {"resumed_at_epoch": 1, "epochs": 3, "history_epochs": 2}
    assert not (tmp_path / "backup").exists()  # a finished run leaves no backup to resume from


class EpochLog(keras.callbacks.Callback):
    """The learning rate each epoch trains with, and the validation loss it ends with."""

    def __init__(self):
        super().__init__()
        self.learning_rates, self.val_losses = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.learning_rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(float(logs["val_loss"]))


class SpoilLastEpoch(keras.callbacks.Callback):
    """Before the last epoch, the output layer's weights are made 50 times larger: that epoch ends far worse than
    the best, whatever the run's noise, so returning its weights instead of the best epoch's would show."""

    def __init__(self, last_epoch: int):
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.last_epoch:
            output = self.model.get_layer("bin_probabilities")
            output.set_weights([w * 50 for w in output.get_weights()])


def plateau_schedule(val_losses, start, patience, factor=0.3, min_delta=1e-4, min_lr=1e-5):
    """The learning rate of each epoch when it is cut to `factor` times after `patience` epochs whose validation
    loss is not `min_delta` below the best (Keras' ReduceLROnPlateau: its default min_delta, our min_lr)."""
    rates, best, waited, rate = [], math.inf, 0, start
    for loss in val_losses:
        rates.append(rate)
        if loss < best - min_delta:
            best, waited = loss, 0
            continue
        waited += 1
        if waited >= patience:
            rate, waited = max(rate * factor, min_lr), 0
    return rates


def test_training_returns_the_best_epochs_weights_and_cuts_the_rate_on_a_plateau(records, tmp_path):
    """The last epoch is spoiled (SpoilLastEpoch), so it ends well past the best; the learning rate follows the
    plateau rule epoch by epoch."""
    log = EpochLog()
    config = dataclasses.replace(FAST, max_epochs=4, lr_plateau_patience=1)
    callbacks = [log, SpoilLastEpoch(config.max_epochs - 1)]
    result = train(TINY, config, records["train"], records["validation"], tmp_path, callbacks=callbacks)
    assert result.epochs == 4 and result.resumed_at_epoch == 0
    assert set(result.history) >= {"loss", "accuracy", "one_off_accuracy", "val_loss", "val_accuracy"}

    expected = plateau_schedule(log.val_losses, config.learning_rate, config.lr_plateau_patience)
    assert log.learning_rates == pytest.approx(expected, rel=1e-6)
    assert log.learning_rates[-1] < log.learning_rates[0], "the scenario must reach a plateau"

    best = int(np.argmin(log.val_losses))
    assert result.best_epoch == best + 1
    assert log.val_losses[-1] - log.val_losses[best] > 0.1, "the scenario must end past its best epoch"
    validation = batches(records["validation"], TINY.input_size, config.batch_size)
    returned = result.model.evaluate(validation, verbose=0, return_dict=True)["loss"]
    assert returned == pytest.approx(log.val_losses[best], abs=1e-5)


@pytest.mark.parametrize("name", ["recommended", "soft_bins"])
def test_our_recipes_train_on_label_distributions(records, tmp_path, name):
    """`recommended`: a year each, the expected age's error in the loss, warm-up, a cosine; `soft_bins`: ten bins."""
    recipe = RECIPES[name]
    network = dataclasses.replace(recipe.network, input_size=32, filters=(8, 16), dense_units=(16,))
    config = dataclasses.replace(recipe.training, max_epochs=4, batch_size=8)
    assert config.label_sigma
    log = EpochLog()
    result = train(network, config, records["train"], records["validation"], tmp_path, callbacks=[log])
    assert result.epochs == 4 and result.history["loss"][-1] < result.history["loss"][0]
    assert set(result.history) >= {"accuracy", "one_off_accuracy", "mae_years", "val_mae_years"}
    probabilities = result.model.predict_on_batch(np.zeros((2, 32, 32, 3), np.float32))
    width = {"recommended": 101, "soft_bins": 10}[name]
    assert probabilities.shape == (2, width) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    if config.schedule == "cosine":
        assert log.learning_rates == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 0.5e-3], rel=1e-5)


def test_the_expected_age_term_is_the_error_in_years_beside_the_cross_entropy():
    label = np.zeros((1, len(YEARS)), np.float32)
    label[0, 30] = 1.0
    prediction = np.zeros((1, len(YEARS)), np.float32)
    prediction[0, [30, 40]] = 0.5  # expected age 35.5 against 30.5
    cross_entropy = -math.log(0.5)
    for weight, expected in ((0.0, cross_entropy), (1.0, cross_entropy + 5.0), (0.5, cross_entropy + 2.5)):
        loss = keras.losses.get(training_loss(YEARS, weight))
        assert float(np.mean(loss(label, prediction))) == pytest.approx(expected, rel=1e-4)


def test_training_metrics_score_a_per_year_output_in_the_paper_bins():
    years = np.zeros((2, len(YEARS)), np.float32)
    years[0, 25], years[1, 40] = 1.0, 1.0  # bins 5 (23-26) and 7 (34-44)
    predicted = np.zeros_like(years)
    predicted[0, 23], predicted[1, 50] = 1.0, 1.0  # the same bin, and one bin off (45-59), 10 years off
    values = {}
    for metric in training_metrics(YEARS):
        metric.update_state(years, predicted)
        values[metric.name] = float(metric.result())
    assert values == pytest.approx({"accuracy": 0.5, "one_off_accuracy": 1.0, "mae_years": 6.0})


def test_a_cosine_schedule_and_plateau_cuts_are_not_mixed():
    with pytest.raises(ValueError, match="cosine schedule sets the learning rate of every epoch"):
        TrainingConfig(schedule="cosine", lr_plateau_patience=3)
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine"):
        TrainingConfig(schedule="onecycle")


def test_empty_or_single_bin_training_sets_are_refused():
    with pytest.raises(TrainingError, match="empty"):
        check_training_set({}, 10)
    with pytest.raises(TrainingError, match="only one age bin"):
        check_training_set({4: 120, 5: 0}, 10)
    check_training_set({4: 1, 5: 1}, 10)


def test_diverging_loss_is_a_clear_error(records, tmp_path):
    with pytest.raises(TrainingError, match="diverged"):
        train(TINY, dataclasses.replace(FAST, learning_rate=1e12), records["train"], records["validation"], tmp_path)


def test_missing_validation_files_are_refused(records, tmp_path):
    with pytest.raises(TrainingError, match="validation"):
        train(TINY, FAST, records["train"], [], tmp_path)


def test_same_seed_same_weights(records, tmp_path):
    config = dataclasses.replace(FAST, max_epochs=1)
    first = train(TINY, config, records["train"], records["validation"], tmp_path / "a").model.get_weights()
    second = train(TINY, config, records["train"], records["validation"], tmp_path / "b").model.get_weights()
    assert all(np.allclose(a, b) for a, b in zip(first, second))
