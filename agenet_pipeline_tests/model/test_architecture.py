import dataclasses

import keras
import numpy as np
import pytest

from agenet_pipeline.model.architecture import RECOMMENDED, SEED, build_model


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_seed_network_is_the_papers_table():
    model = build_model(SEED)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 128, 256, 512, 1024]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [c.strides for c in convs] == [(2, 2)] + [(1, 1)] * 4
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 4
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 5 and all(d.rate == 0.187 for d in dropouts)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [256, 128, 10]
    assert model.input_shape == (None, 256, 256, 3) and model.output_shape == (None, 10)
    # Pooling follows conv 1-4 and not conv 5.
    types = layer_types(model)
    conv5 = [i for i, t in enumerate(types) if t == "Conv2D"][4]
    assert "MaxPooling2D" not in types[conv5:]


def test_every_tuned_variant_is_configuration():
    config = dataclasses.replace(SEED, input_size=64, filters=(8, 16, 32), kernel_size=5, dense_units=(32,))
    model = build_model(config)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 16, 32] and convs[0].kernel_size == (5, 5)
    assert model.output_shape == (None, 10)
    assert build_model(dataclasses.replace(config, head="years")).output_shape == (None, 101)


def test_a_head_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="head must be one of bins, years"):
        dataclasses.replace(SEED, head="decades")


def test_recommended_adds_batch_norm_and_global_pooling():
    types = layer_types(build_model(dataclasses.replace(RECOMMENDED, input_size=64)))
    assert types.count("BatchNormalization") == 5 and "GlobalAveragePooling2D" in types and "Flatten" not in types


def test_output_is_a_probability_distribution():
    model = build_model(dataclasses.replace(SEED, input_size=32, filters=(4, 8)))
    probabilities = model.predict(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)), verbose=0)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
