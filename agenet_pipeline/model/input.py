"""The input pipeline: TFRecord shards to batches, streamed, augmented in the graph, never held in memory."""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from agenet_pipeline.faces.tfrecords import feature_spec
from agenet_pipeline.model.bins import SEED_BINS, AgeBins

AUTOTUNE = tf.data.AUTOTUNE


def soft_labels(age: tf.Tensor, bins: AgeBins, sigma: float) -> tf.Tensor:
    """A label distribution: the mass of a normal distribution around `age` (sd `sigma` years) in each bin."""
    edges = tf.constant([*bins.cut_points[1:]], tf.float32)
    cdf = 0.5 * (1 + tf.math.erf((edges - age[..., None]) / (sigma * math.sqrt(2))))
    zeros, ones = tf.zeros_like(cdf[..., :1]), tf.ones_like(cdf[..., :1])
    cdf = tf.concat([zeros, cdf, ones], axis=-1)
    return cdf[..., 1:] - cdf[..., :-1]


def _augmenter(seed: int) -> tf.keras.Sequential:
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed + 2),
        ],
        name="augmentation",
    )


def _decode_at_least(jpeg: tf.Tensor, size: int) -> tf.Tensor:
    """The JPEG decoded at the coarsest DCT scale (1, 1/2, 1/4, 1/8) that still gives `size` pixels a side:
    a 256-pixel crop for a 128-pixel input is decoded at half scale, for about a quarter of the work."""
    side = tf.reduce_min(tf.io.extract_jpeg_shape(jpeg)[:2])
    scale = tf.add_n([tf.cast(side // ratio >= size, tf.int32) for ratio in (2, 4, 8)])
    return tf.switch_case(
        scale, [lambda ratio=ratio: tf.io.decode_jpeg(jpeg, channels=3, ratio=ratio) for ratio in (1, 2, 4, 8)]
    )


def _records(files: Sequence[str], input_size: int, shuffle_seed: int | None, shuffle_buffer: int) -> tf.data.Dataset:
    """Decoded examples (dicts of image, bin, age, dataset, row), shuffled when a seed is given."""
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
        image = _decode_at_least(example["image"], input_size)
        example["image"] = tf.image.resize(image, (input_size, input_size), antialias=True)
        return example

    return dataset.map(decode, num_parallel_calls=AUTOTUNE)


def batches(
    files: Sequence[str],
    input_size: int,
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
    bins: AgeBins = SEED_BINS,
    label_sigma: float | None = None,
    shuffle_buffer: int = 2048,
) -> tf.data.Dataset:
    """(images, labels) batches for `fit`: one-hot bins, or a label distribution when `label_sigma` is set.

    Training streams shuffle files and records and augment in the graph (flip, rotation, zoom).
    """
    dataset = _records(files, input_size, seed if training else None, shuffle_buffer).batch(batch_size)
    augment = _augmenter(seed) if training else None

    def pair(example):
        image = augment(example["image"], training=True) if augment else example["image"]
        label = soft_labels(example["age"], bins, label_sigma) if label_sigma else tf.one_hot(example["bin"], len(bins))
        return image, label

    return dataset.map(pair, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def examples(files: Sequence[str], input_size: int, batch_size: int) -> tf.data.Dataset:
    """Batches of dicts (image, bin, age, dataset, row) in file order, for prediction and evaluation."""
    return _records(files, input_size, None, 0).batch(batch_size).prefetch(AUTOTUNE)
