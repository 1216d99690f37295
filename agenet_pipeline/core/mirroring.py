"""A network's output for faces: the mean of its outputs for each face and for the face's mirror image."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def output_both_ways(network: Callable[[np.ndarray], np.ndarray], pixels) -> np.ndarray:
    """`network` (N x S x S x 3 pixels -> N x outputs) run once on the faces and their mirror images (left and right
    swapped) together, each face's two outputs averaged. Training flips faces at random, so either way is a face
    the network knows; the mean of the two readings is steadier than one (chosen on the validation split, see the
    README's Training section)."""
    pixels = np.asarray(pixels)
    both = np.asarray(network(np.concatenate([pixels, pixels[:, :, ::-1]])))
    return (both[: len(pixels)] + both[len(pixels) :]) / 2
