"""What each convolution of the network sees in a face (the paper's Figure 7)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from agenet_pipeline.model.input import examples


def sample_face(files: Sequence[str], input_size: int) -> np.ndarray:
    """The first example of `files`, decoded and resized as the network receives it (RGB, 0-255)."""
    for batch in examples(list(files)[:1], input_size, 1).take(1):
        return batch["image"].numpy()[0]
    raise ValueError(f"{list(files)[:1]} holds no examples")


def feature_maps(model: keras.Model, image: np.ndarray, per_layer: int = 6) -> list[tuple[str, np.ndarray]]:
    """(conv layer name, its `per_layer` most active feature maps after the ReLU, H x W x per_layer) per conv
    layer, in order. The most active maps are shown because many of a layer's maps are nearly blank."""
    names, outputs, conv = [], [], None
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            conv = layer.name
        elif isinstance(layer, keras.layers.ReLU) and conv is not None:
            names.append(conv)
            outputs.append(layer.output)
            conv = None
    if not outputs:
        raise ValueError(f"{model.name} has no convolution followed by a ReLU layer")
    activations = keras.Model(model.inputs, outputs)(image[None].astype(np.float32), training=False)
    chosen = []
    for name, maps in zip(names, activations):
        maps = np.asarray(maps)[0]
        strongest = np.argsort(maps.mean(axis=(0, 1)))[::-1][:per_layer]
        chosen.append((name, maps[..., np.sort(strongest)]))
    return chosen
