import numpy as np
import polars as pl

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.evaluation.feature_maps import feature_maps
from agenet_pipeline.evaluation.figures import confusion_figure, feature_maps_figure, reliability_figure
from agenet_pipeline.evaluation.scores import calibration
from agenet_pipeline.model.architecture import ModelConfig, build_model

PNG = b"\x89PNG\r\n\x1a\n"


def test_feature_maps_are_the_most_active_maps_of_each_conv_layer():
    model = build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,)))
    face = np.random.default_rng(0).uniform(0, 255, (32, 32, 3)).astype(np.float32)
    maps = feature_maps(model, face, per_layer=6)
    assert [name for name, _ in maps] == ["conv1", "conv2"]
    assert maps[0][1].shape == (16, 16, 6) and maps[1][1].shape == (8, 8, 6)  # conv1 has stride 2
    assert all((activations >= 0).all() for _, activations in maps)  # after the ReLU
    wide = feature_maps(model, face, per_layer=100)
    assert wide[0][1].shape[-1] == 8 and wide[1][1].shape[-1] == 16
    assert feature_maps_figure(face, maps, "a face").startswith(PNG)


def test_figures_are_pngs_even_with_empty_bins():
    matrix = np.zeros((10, 10), np.int64)
    matrix[6, 6] = 3  # every other true bin is empty: no division by zero
    assert confusion_figure(matrix, SEED_BINS.labels, "test").startswith(PNG)
    probabilities = np.full((3, 10), 0.1)
    result = calibration(probabilities, np.array([30.0, 30, 30]))
    assert result.table.filter(pl.col("examples") > 0).height == 1
    assert reliability_figure(result, "test").startswith(PNG)
