import time

import mlflow
import numpy as np
import pytest

from agenet_pipeline.tracking.runs import signature, training_curves
from agenet_pipeline.tracking.store import TrackingStoreError, check_store


def test_unreachable_server_fails_fast_naming_the_uri():
    started = time.monotonic()
    with pytest.raises(TrackingStoreError, match="http://127.0.0.1:9 cannot be reached"):
        check_store("http://127.0.0.1:9")
    assert time.monotonic() - started < 30


def test_sqlite_store_that_cannot_be_written_is_refused():
    with pytest.raises(TrackingStoreError, match="/proc/agenet/mlflow.db cannot be reached"):
        check_store("sqlite:////proc/agenet/mlflow.db")


def test_sqlite_store_is_created_and_usable(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    check_store(uri)
    assert (tmp_path / "mlflow.db").is_file()
    assert mlflow.MlflowClient(uri).search_experiments()


def test_signature_describes_images_in_and_bin_probabilities_out():
    described = signature(64, 10).to_dict()
    assert "[-1, 64, 64, 3]" in described["inputs"] and "[-1, 10]" in described["outputs"]


def test_training_curves_plot_every_metric():
    history = {
        "loss": [2.0, 1.5],
        "val_loss": [2.1, 1.7],
        "mae_years": [9.0, 7.0],
        "val_mae_years": [9.5, 8.0],
        "accuracy": [0.2, 0.3],
        "val_accuracy": [0.1, 0.2],
        "one_off_accuracy": [0.4, 0.5],
        "val_one_off_accuracy": [0.3, 0.4],
    }
    figure = training_curves(history)
    assert [len(axis.lines) for axis in figure.axes] == [2, 2, 2, 2]
    assert np.allclose(figure.axes[0].lines[1].get_ydata(), [2.1, 1.7])
    assert np.allclose(figure.axes[1].lines[1].get_ydata(), [9.5, 8.0])
