"""The input pipeline: TFRecord shards to batches, streamed, augmented in the graph, never held in memory."""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from agenet_pipeline.core.ages import SEED_BINS, AgeBins
from agenet_pipeline.model.augmentation import LUMA, MAX_ANGLE, ZOOM
from agenet_pipeline.model.records import feature_spec

AUTOTUNE = tf.data.AUTOTUNE


def soft_labels(age: tf.Tensor, bins: AgeBins, sigma: float) -> tf.Tensor:
    """A label distribution: the mass of a normal distribution around `age` (sd `sigma` years) in each bin.

    An age in whole years (as UTKFace and IMDB give it) names a year of life, so the distribution is centred in
    the middle of that year. Centred on the birthday itself, the first year of a bin would be a cut point, with
    as much mass on the bin below as on its own.
    """
    centre = tf.where(age == tf.floor(age), age + 0.5, age)
    edges = tf.constant([*bins.cut_points[1:]], tf.float32)
    cdf = 0.5 * (1 + tf.math.erf((edges - centre[..., None]) / (sigma * math.sqrt(2))))
    zeros, ones = tf.zeros_like(cdf[..., :1]), tf.ones_like(cdf[..., :1])
    cdf = tf.concat([zeros, cdf, ones], axis=-1)
    return cdf[..., 1:] - cdf[..., :-1]


def one_hot(age: tf.Tensor, bins: AgeBins) -> tf.Tensor:
    """Each age's bin, one-hot."""
    cut_points = tf.constant(bins.cut_points, tf.float32)
    return tf.one_hot(tf.searchsorted(cut_points, age, side="right") - 1, len(bins))


def augmented(images: tf.Tensor, seed: tf.Tensor, greyscale: float = 0.0) -> tf.Tensor:
    """The paper's augmentation (horizontal flip with p 0.5, rotation up to 0.05 turn, zoom of up to 10 %) as one
    projective transform per image, sampled at the nearest pixel (as torchvision's rotation does): a quarter of the
    CPU of three bilinear Keras layers, so that the input keeps up with training on a CPU. Then, with probability
    `greyscale`, the image in grey (`in_grey`).

    `seed` (two integers) makes the draw stateless: the same seed gives the same transforms.
    """
    n = tf.shape(images)[0]
    flip_seed, angle_seed, scale_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    flip = tf.where(tf.random.stateless_uniform([n], flip_seed) < 0.5, -1.0, 1.0)
    angle = tf.random.stateless_uniform([n], angle_seed, -MAX_ANGLE, MAX_ANGLE)
    scale = tf.random.stateless_uniform([n], scale_seed, *ZOOM)
    size = tf.cast(tf.shape(images)[1:3], tf.float32)
    cy, cx = (size[0] - 1) / 2, (size[1] - 1) / 2
    # Output pixel p samples the input at M (p - c) + c, with M = scale * rotation * diag(flip, 1).
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    a0, a1, b0, b1 = cos * flip, -sin, sin * flip, cos
    a2, b2 = cx - a0 * cx - a1 * cy, cy - b0 * cx - b1 * cy
    zeros = tf.zeros([n])
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    if not greyscale:
        return images
    grey = tf.random.stateless_uniform([n], tf.random.experimental.stateless_fold_in(seed, 1)) < greyscale
    return tf.where(grey[:, None, None, None], in_grey(images), images)


def in_grey(images: tf.Tensor) -> tf.Tensor:
    """uint8 RGB images with each pixel's luma (`augmentation.LUMA`) in all three channels."""
    luma = tf.tensordot(tf.cast(images, tf.float32), tf.constant(LUMA), axes=[[3], [0]])
    return tf.repeat(tf.saturate_cast(tf.round(luma), tf.uint8)[..., None], 3, axis=-1)


def decode_at_least(jpeg: tf.Tensor, size: int) -> tf.Tensor:
    """The JPEG decoded at the coarsest DCT scale (1, 1/2, 1/4, 1/8) that still gives `size` pixels a side:
    a 256-pixel crop for a 128-pixel input is decoded at half scale, for about a quarter of the work.

    The accurate inverse DCT, and resizing by area averaging, are what the served model's `faces.crop.decode_crop`
    does with OpenCV: served faces reach the network as training examples do (agenet_pipeline_tests/serving/
    test_parity.py)."""
    side = tf.reduce_min(tf.io.extract_jpeg_shape(jpeg)[:2])
    scale = tf.add_n([tf.cast(side // ratio >= size, tf.int32) for ratio in (2, 4, 8)])
    return tf.switch_case(
        scale,
        [
            lambda ratio=ratio: tf.io.decode_jpeg(jpeg, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE")
            for ratio in (1, 2, 4, 8)
        ],
    )


def _records(files: Sequence[str], input_size: int, shuffle_seed: int | None, shuffle_buffer: int) -> tf.data.Dataset:
    """Decoded examples (dicts of image, bin, age, dataset, row), shuffled when a seed is given.

    Images stay uint8 until batched and augmented: a quarter of the bytes to move and resample."""
    if not files:
        raise ValueError("no TFRecord files to read")
    spec = feature_spec()
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE, deterministic=True
    )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)

    def decode(record):
        example = tf.io.parse_single_example(record, spec)
        image = decode_at_least(example["image"], input_size)
        example["image"] = tf.cond(
            tf.reduce_all(tf.shape(image)[:2] == input_size),
            lambda: image,
            lambda: tf.saturate_cast(
                tf.round(tf.image.resize(image, (input_size, input_size), method="area")), tf.uint8
            ),
        )
        return example

    return dataset.map(decode, num_parallel_calls=AUTOTUNE)


def batches(
    files: Sequence[str],
    input_size: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    augment: bool = False,
    greyscale: float = 0.0,
    seed: int = 0,
    bins: AgeBins = SEED_BINS,
    label_sigma: float | None = None,
    shuffle_buffer: int = 2048,
) -> tf.data.Dataset:
    """(images, labels) batches for `fit`: one-hot `bins` (the bins the network outputs), or a label distribution
    over them when `label_sigma` is set.

    `shuffle`: files and records in a seeded order that changes each epoch; `augment`: the paper's augmentation
    in the graph (flip, rotation, zoom), and grey images with probability `greyscale`. Both seeded by `seed`.
    """
    dataset = _records(files, input_size, seed if shuffle else None, shuffle_buffer).batch(batch_size)
    # One stateless seed per batch, drawn afresh each epoch: augmentation is reproducible and never repeats.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds)

    def pair(example, batch_seed):
        image = augmented(example["image"], batch_seed, greyscale) if augment else example["image"]
        image = tf.cast(image, tf.float32)
        label = soft_labels(example["age"], bins, label_sigma) if label_sigma else one_hot(example["age"], bins)
        return image, label

    return dataset.map(pair, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def examples(files: Sequence[str], input_size: int, batch_size: int) -> tf.data.Dataset:
    """Batches of dicts (image, bin, age, dataset, row) in file order, for prediction and evaluation."""

    def as_float(example):
        return example | {"image": tf.cast(example["image"], tf.float32)}

    return _records(files, input_size, None, 0).batch(batch_size).map(as_float).prefetch(AUTOTUNE)
