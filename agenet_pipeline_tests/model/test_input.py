import numpy as np
import pytest
import tensorflow as tf

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.model.input import augmented, batches, examples, soft_labels


def test_training_batches_are_augmented_images_and_one_hot_bins(records):
    images, labels = next(iter(batches(records["train"], 40, 8, shuffle=True, augment=True)))
    assert images.shape == (8, 40, 40, 3) and images.dtype == tf.float32
    assert labels.shape == (8, 10) and np.allclose(labels.numpy().sum(axis=1), 1)
    assert set(np.unique(labels.numpy())) == {0.0, 1.0}


def test_evaluation_batches_are_deterministic(records):
    first = [labels.numpy() for _, labels in batches(records["validation"], 32, 8)]
    second = [labels.numpy() for _, labels in batches(records["validation"], 32, 8)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second)) and sum(len(a) for a in first) == 20


def test_training_order_depends_on_the_seed(records):
    def order(seed):
        return np.concatenate(
            [y.numpy().argmax(1) for _, y in batches(records["train"], 32, 8, shuffle=True, augment=True, seed=seed)]
        )

    assert np.array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))


def test_label_distribution_mass_sums_to_one_around_the_age():
    distribution = soft_labels(tf.constant([30.0, 0.0, 90.0]), SEED_BINS, sigma=3.0).numpy()
    assert np.allclose(distribution.sum(axis=1), 1, atol=1e-6)
    assert distribution[0].argmax() == SEED_BINS.index(30) and distribution[0][SEED_BINS.index(30) - 1] > 0.01
    assert distribution[1][0] > 0.75 and distribution[2][-1] == pytest.approx(1.0, abs=1e-6)


def test_label_distribution_peaks_in_the_bin_of_every_whole_age():
    ages = np.arange(0, 117, dtype=np.float32)
    distribution = soft_labels(tf.constant(ages), SEED_BINS, sigma=3.0).numpy()
    assert np.array_equal(distribution.argmax(axis=1), SEED_BINS.index(ages))


def test_examples_carry_the_row_keys(records):
    batch = next(iter(examples(records["validation"], 32, 64)))
    assert sorted(batch["row"].numpy().tolist()) == list(range(60, 80))
    assert batch["image"].shape == (20, 32, 32, 3)


@pytest.mark.parametrize(("size", "decoded"), [(32, 32), (64, 64), (100, 128), (128, 128), (200, 256), (300, 256)])
def test_jpeg_is_decoded_at_the_coarsest_scale_that_keeps_the_input_size(size, decoded):
    import cv2

    from agenet_pipeline.model.input import decode_at_least

    crop = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    jpeg = tf.constant(cv2.imencode(".jpg", crop)[1].tobytes())
    assert tuple(decode_at_least(jpeg, size).shape) == (decoded, decoded, 3)


def test_augmentation_is_one_seeded_transform_about_the_centre():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (64, 33, 33, 3)), tf.float32)
    first = augmented(images, tf.constant([3, 4], tf.int64)).numpy()
    assert np.array_equal(first, augmented(images, tf.constant([3, 4], tf.int64)).numpy())
    assert not np.allclose(first, augmented(images, tf.constant([5, 6], tf.int64)).numpy())
    assert np.allclose(first[:, 16, 16], images.numpy()[:, 16, 16], atol=1e-3)  # the centre stays in place
    ramp = tf.constant(np.broadcast_to(np.linspace(0, 255, 33)[None, None, :, None], (64, 33, 33, 3)), tf.float32)
    ramp = augmented(ramp, tf.constant([3, 4], tf.int64)).numpy()
    flipped = ramp[:, 12:21, 4:12].mean(axis=(1, 2, 3)) > ramp[:, 12:21, 21:29].mean(axis=(1, 2, 3))
    assert 10 < flipped.sum() < 54  # about half the images are mirrored
