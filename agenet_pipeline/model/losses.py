"""The training loss: cross-entropy against the label distribution and, DLDL-v2 style, the error of the expected
age, so that the network learns the shape of an age's distribution and the one number that is read out of it."""

from __future__ import annotations

import keras

from agenet_pipeline.core.ages import AgeBins
from agenet_pipeline.model.metrics import expected_age_of


class DistributionAndAgeLoss(keras.losses.Loss):
    """Categorical cross-entropy plus `weight` times the absolute difference, in years, between the expected ages
    of the prediction and of the label."""

    def __init__(self, output: AgeBins, weight: float, name: str = "distribution_and_age", **kwargs):
        super().__init__(name=name, **kwargs)
        self.midpoints = keras.ops.convert_to_tensor(output.midpoints, "float32")
        self.weight = weight

    def call(self, y_true, y_pred):
        cross_entropy = keras.losses.categorical_crossentropy(y_true, y_pred)
        error = keras.ops.abs(expected_age_of(y_pred, self.midpoints) - expected_age_of(y_true, self.midpoints))
        return cross_entropy + self.weight * error


def training_loss(output: AgeBins, expected_age_weight: float):
    if expected_age_weight < 0:
        raise ValueError(f"expected_age_weight must be 0 or more, not {expected_age_weight}")
    return DistributionAndAgeLoss(output, expected_age_weight) if expected_age_weight else "categorical_crossentropy"
