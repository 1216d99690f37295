import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from agenet_pipeline.model.architecture import SEED
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


def test_training_learns_and_restores_the_best_epoch(records, tmp_path):
    config = dataclasses.replace(FAST, max_epochs=4, lr_plateau_patience=1)
    result = train(TINY, config, records["train"], records["validation"], tmp_path)
    assert result.epochs == 4 and result.resumed_at_epoch == 0
    assert 1 <= result.best_epoch <= 4
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert set(result.history) >= {"loss", "accuracy", "one_off_accuracy", "val_loss", "val_accuracy"}


def test_recommended_recipe_trains_on_label_distributions(records, tmp_path):
    recipe = RECIPES["recommended"]
    network = dataclasses.replace(recipe.network, input_size=32, filters=(8, 16), dense_units=(16,))
    config = dataclasses.replace(recipe.training, max_epochs=3, batch_size=8)
    assert config.label_sigma
    result = train(network, config, records["train"], records["validation"], tmp_path)
    assert result.epochs == 3 and result.history["loss"][-1] < result.history["loss"][0]
    probabilities = result.model.predict_on_batch(np.zeros((2, 32, 32, 3), np.float32))
    assert probabilities.shape == (2, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


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
