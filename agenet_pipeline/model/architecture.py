"""The AgeNet CNN, built from a configuration so that every variant the paper tuned is a value, not code.

`SEED` is the paper's network as its tables give it: five 3x3 convolutions (64 to 1024 filters, the first with
stride 2), ReLU, max-pooling after the first four, dropout 0.187 after each, dense 256-128 and a softmax over
the age bins. `SOFT_BINS` adds batch normalisation and global average pooling, with lighter dropout (0.1: with
batch normalisation and the augmentation, 0.25 left the network underfitting); its softmax is trained on soft
labels (`input.soft_labels`) and read out as an expected age (`AgeBins.expected_age`). `RECOMMENDED` is that network
with a `years` head: a softmax over each year of life (`core.ages.YEARS`), whose answer is not held to ten midpoints
(the 60+ bin alone spans decades): the median age, and the paper's bin of its median year (`core.ages.answered_age`).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from agenet_pipeline.core.ages import SEED_BINS, YEARS, AgeBins

# The output a network is trained to give: the paper's ten bins, or a probability per year of life.
HEADS = {"bins": SEED_BINS, "years": YEARS}


@dataclass(frozen=True)
class ModelConfig:
    input_size: int = 256
    filters: tuple[int, ...] = (64, 128, 256, 512, 1024)
    kernel_size: int = 3
    first_stride: int = 2
    pooled_layers: int = 4
    dropout: float = 0.187
    dense_units: tuple[int, ...] = (256, 128)
    batch_norm: bool = False
    global_pooling: bool = False
    head: str = "bins"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {self.head!r}")

    @property
    def output_bins(self) -> AgeBins:
        return HEADS[self.head]


SEED = ModelConfig()
SOFT_BINS = ModelConfig(batch_norm=True, global_pooling=True, dropout=0.1)
RECOMMENDED = ModelConfig(batch_norm=True, global_pooling=True, dropout=0.1, head="years")


def build_model(config: ModelConfig) -> keras.Model:
    """The network: RGB uint8-range pixels in, probabilities over its head's bins out (`config.output_bins`)."""
    inputs = keras.Input((config.input_size, config.input_size, 3), name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    for index, filters in enumerate(config.filters):
        stride = config.first_stride if index == 0 else 1
        x = layers.Conv2D(
            filters,
            config.kernel_size,
            strides=stride,
            padding="same",
            use_bias=not config.batch_norm,
            name=f"conv{index + 1}",
        )(x)
        if config.batch_norm:
            # Keras' default momentum (0.99) needs hundreds of steps before the statistics used at inference
            # catch up with training: on a small dataset the validation loss climbs while the training loss falls.
            x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        if index < config.pooled_layers:
            x = layers.MaxPooling2D()(x)
        x = layers.Dropout(config.dropout)(x)
    x = layers.GlobalAveragePooling2D()(x) if config.global_pooling else layers.Flatten()(x)
    for units in config.dense_units:
        x = layers.Dense(units, activation="relu")(x)
    outputs = layers.Dense(len(config.output_bins), activation="softmax", dtype="float32", name="bin_probabilities")(x)
    return keras.Model(inputs, outputs, name="agenet")
