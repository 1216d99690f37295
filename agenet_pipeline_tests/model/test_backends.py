"""Training with a Keras backend other than TensorFlow (JAX's CPU build), in a process of its own beside this
one's TensorFlow: trained on several devices' strategy, saved, and the files of each backend loaded by the other;
the choice of precision and strategy."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from agenet_pipeline.model.devices import Accelerators, data_parallel, precision_policy

REPOSITORY = Path(__file__).resolve().parents[2]

# Trains a small `recommended` network for two epochs with `data_parallel` on (Keras' distribution API over the
# CPU's one device), saves it, predicts `probe.npy` with it and with the TensorFlow-saved network `tf.keras`, and
# says whether TensorFlow was imported. (Killed and resumed under JAX: pipeline/test_jax_training.py.)
TRAINER = textwrap.dedent("""
    import dataclasses, json, sys
    from pathlib import Path
    import keras
    import numpy as np
    from agenet_pipeline.model.architecture import RECOMMENDED
    from agenet_pipeline.model.training import TrainingConfig, save_model, train

    train_files, validation_files, folder = json.loads(sys.argv[1])
    folder = Path(folder)

    class Distribution(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = str(keras.distribution.distribution())

    network = dataclasses.replace(RECOMMENDED, input_size=32, filters=(8, 16), dense_units=(16,))
    config = TrainingConfig(max_epochs=2, batch_size=8, label_sigma=3.0, data_parallel=True)
    distribution = Distribution()
    result = train(network, config, train_files, validation_files, folder / "checkpoints", callbacks=[distribution])
    save_model(result.model, folder / "jax.keras")
    probe = np.load(folder / "probe.npy")
    np.save(folder / "jax_on_jax.npy", keras.ops.convert_to_numpy(result.model.predict_on_batch(probe)))
    from_tf = keras.saving.load_model(folder / "tf.keras")
    np.save(folder / "tf_on_jax.npy", keras.ops.convert_to_numpy(from_tf.predict_on_batch(probe)))
    print(json.dumps({"epochs": result.epochs, "backend": keras.backend.backend(),
                      "distribution": distribution.seen, "tensorflow": "tensorflow" in sys.modules}))
""")


def test_jax_trains_and_saves_files_each_backend_loads(records, tmp_path):
    pytest.importorskip("jax", reason="the JAX backend is not installed (the test extra installs its CPU build)")
    from agenet_pipeline.model.architecture import RECOMMENDED, build_model
    from agenet_pipeline.model.training import save_model

    probe = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "probe.npy", probe)
    on_tf = build_model(dataclasses.replace(RECOMMENDED, input_size=32, filters=(8, 16), dense_units=(16,)))
    save_model(on_tf, tmp_path / "tf.keras")

    arguments = json.dumps([records["train"], records["validation"], str(tmp_path)])
    completed = subprocess.run(
        [sys.executable, "-c", TRAINER, arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome == {"epochs": 2, "backend": "jax", "distribution": outcome["distribution"], "tensorflow": False}
    assert outcome["distribution"].startswith("<DataParallel")

    from_jax = keras.saving.load_model(tmp_path / "jax.keras")
    np.testing.assert_allclose(from_jax.predict_on_batch(probe), np.load(tmp_path / "jax_on_jax.npy"), atol=1e-5)
    np.testing.assert_allclose(on_tf.predict_on_batch(probe), np.load(tmp_path / "tf_on_jax.npy"), atol=1e-5)


@pytest.mark.parametrize(
    ("mixed", "devices", "policy"),
    [
        (True, Accelerators(1, (9, 0)), "mixed_bfloat16"),
        (True, Accelerators(2, (8, 0)), "mixed_bfloat16"),
        (True, Accelerators(1, (7, 5)), "mixed_float16"),
        (True, Accelerators(0), "float32"),
        (False, Accelerators(1, (9, 0)), "float32"),
    ],
)
def test_mixed_precision_is_bfloat16_where_the_gpu_has_it(mixed, devices, policy):
    assert precision_policy(mixed, devices) == policy


def test_batches_are_split_over_devices_when_several_gpus_are_seen_or_when_asked():
    assert data_parallel(None, Accelerators(2, (9, 0))) and not data_parallel(None, Accelerators(1, (9, 0)))
    assert data_parallel(True, Accelerators(0)) and not data_parallel(False, Accelerators(4, (9, 0)))
