import numpy as np
import pytest

from agenet_pipeline_tests.formats import write_records


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> dict[str, list[str]]:
    """Small train and validation TFRecord sets with every bin present."""
    folder = tmp_path_factory.mktemp("records")
    ages = np.array([1, 5, 10, 15, 20, 25, 30, 40, 50, 70] * 6)
    return {
        "train": [
            str(write_records(folder / "train-a.tfrecord", ages[:30], 0)),
            str(write_records(folder / "train-b.tfrecord", ages[30:], 1, first_row=30)),
        ],
        "validation": [str(write_records(folder / "validation.tfrecord", ages[:20], 2, first_row=60))],
    }
