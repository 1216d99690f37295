"""The input path without TensorFlow (`model.loader`) against the `tf.data` one (`model.input`), on real crops."""

import numpy as np
import pytest
import tensorflow as tf

from agenet_pipeline.core.ages import SEED_BINS, YEARS
from agenet_pipeline.datasets.utkface import parse_name
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.stage import face_from_photo
from agenet_pipeline.model import input as tf_input
from agenet_pipeline.model.loader import (
    Examples,
    TrainingBatches,
    augmented,
    example_batches,
    in_grey,
    interleaved,
    jpeg_side,
    one_hot,
    parse_example,
    record_offsets,
    soft_labels,
)
from agenet_pipeline.model.records import serialized_example
from agenet_pipeline_tests.conftest import shared_data

PHOTOS = 36


@pytest.fixture(scope="module")
def real_records(tmp_path_factory) -> list[str]:
    """Two TFRecord files of UTKFace photos cropped by the face stage (256 px crops), as training shards hold them."""
    photos = sorted((shared_data("utkface_part1") / "UTKFace").glob("*.jpg"))[::97][:PHOTOS]
    folder = tmp_path_factory.mktemp("real_records")
    settings = FaceSettings(fallback_whole_image=True)
    files = [str(folder / f"train-utkface-0000{i}-of-00002.tfrecord") for i in range(2)]
    with FaceDetector(resolve_model()) as detector:
        faces = [(face_from_photo(p.read_bytes(), detector, settings), parse_name(p.name)["age"]) for p in photos]
    for index, path in enumerate(files):
        with tf.io.TFRecordWriter(path) as writer:
            for row, (face, age) in enumerate(faces):
                if row % 2 == index:
                    writer.write(serialized_example(face["crop_jpeg"], int(SEED_BINS.index(age)), age, "utkface", row))
    return files


def tf_batches(files, size, **options):
    return [(x.numpy(), y.numpy()) for x, y in tf_input.batches(files, size, 8, **options)]


def loader_batches(files, size, **options):
    batches = TrainingBatches(files, size, 8, **options)
    return [batches[i] for i in range(len(batches))]


@pytest.mark.parametrize("label_sigma", [None, 3.0])
def test_both_paths_give_the_same_examples_at_a_dct_scale(real_records, label_sigma):
    expected = tf_batches(real_records, 128, label_sigma=label_sigma)
    got = loader_batches(real_records, 128, label_sigma=label_sigma)
    assert len(got) == len(expected) == 5
    for (x, y), (tx, ty) in zip(got, expected):
        assert x.dtype == tx.dtype == np.float32 and np.array_equal(x, tx)
        np.testing.assert_allclose(y, ty, atol=1e-6)


def test_both_paths_give_the_same_examples_resized_by_area(real_records):
    # 100 px is no DCT scale of 256: both decode at full size and average areas, OpenCV and TensorFlow apart
    # by rounding only.
    for (x, _), (tx, _) in zip(loader_batches(real_records, 100), tf_batches(real_records, 100)):
        difference = np.abs(x - tx)
        assert difference.max() <= 1 and difference.mean() < 0.05


def test_prediction_examples_carry_the_same_keys_and_pixels(real_records):
    [expected] = list(tf_input.examples(real_records, 64, 64))
    [got] = list(example_batches(real_records, 64, 64))
    for key in ("row", "bin", "age", "dataset"):
        assert np.array_equal(got[key], expected[key].numpy()), key
    assert np.array_equal(got["image"], expected["image"].numpy())


def test_an_epoch_is_every_example_once_in_an_order_of_the_seed_and_epoch(real_records):
    def rows(seed, epoch):
        batches = TrainingBatches(real_records, 32, 8, shuffle=True, seed=seed, epoch=epoch)
        return batches.examples.read(batches.order, 32)["row"]

    assert sorted(rows(0, 0)) == list(range(PHOTOS))
    assert np.array_equal(rows(0, 0), rows(0, 0))
    assert not np.array_equal(rows(0, 0), rows(1, 0))
    assert not np.array_equal(rows(0, 0), rows(0, 1))
    batches = TrainingBatches(real_records, 32, 8, shuffle=True, augment=True)
    first = batches[2][0]
    batches.on_epoch_end()
    resumed = TrainingBatches(real_records, 32, 8, shuffle=True, augment=True, epoch=1)
    assert np.array_equal(batches[2][0], resumed[2][0])  # a run resumed at epoch 1 sees what it would have
    assert not np.array_equal(first, batches[2][0])


def test_augmentation_is_one_seeded_transform_about_the_centre():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 33, 33, 3), dtype=np.uint8)
    first = augmented(images, np.random.default_rng(3))
    assert np.array_equal(first, augmented(images, np.random.default_rng(3)))
    assert not np.array_equal(first, augmented(images, np.random.default_rng(4)))
    assert np.array_equal(first[:, 16, 16], images[:, 16, 16])  # the centre stays in place
    ramp = np.broadcast_to(np.linspace(0, 255, 33).astype(np.uint8)[None, None, :, None], (64, 33, 33, 3)).copy()
    ramp = augmented(ramp, np.random.default_rng(3)).astype(float)
    flipped = ramp[:, 12:21, 4:12].mean(axis=(1, 2, 3)) > ramp[:, 12:21, 21:29].mean(axis=(1, 2, 3))
    assert 10 < flipped.sum() < 54  # about half the images are mirrored
    corners = augmented(np.full((64, 33, 33, 3), 255, np.uint8), np.random.default_rng(3))[:, 0, 0, 0]
    assert 0 < (corners == 0).sum() < 64  # rotated or zoomed out: black comes in at the corners


@pytest.mark.parametrize("path", ["loader", "tf.data"])
def test_grey_faces_are_drawn_with_their_probability_and_weighed_as_the_other_path_weighs_them(path):
    images = np.random.default_rng(0).integers(0, 256, (400, 9, 9, 3), dtype=np.uint8)
    if path == "loader":
        grey, kept = augmented(images, np.random.default_rng(3), 0.25), augmented(images, np.random.default_rng(3))
    else:
        seed = tf.constant([3, 4], tf.int64)
        grey, kept = (tf_input.augmented(tf.constant(images), seed, p).numpy() for p in (0.25, 0.0))
    is_grey = (grey[..., 0] == grey[..., 1]).all(axis=(1, 2)) & (grey[..., 1] == grey[..., 2]).all(axis=(1, 2))
    assert 60 < is_grey.sum() < 140  # about a quarter
    assert np.array_equal(grey[~is_grey], kept[~is_grey])  # the same transforms; only the grey ones differ
    assert np.array_equal(grey[is_grey], in_grey(kept[is_grey]))
    assert np.array_equal(in_grey(images), tf_input.in_grey(tf.constant(images)).numpy())


@pytest.mark.parametrize(("bins", "sigma"), [(SEED_BINS, 3.0), (YEARS, 2.0)])
def test_label_distributions_are_those_of_the_tf_path(bins, sigma):
    ages = np.arange(0, 117, 0.5, dtype=np.float32)
    expected = tf_input.soft_labels(tf.constant(ages), bins, sigma).numpy()
    np.testing.assert_allclose(soft_labels(ages, bins, sigma), expected, atol=1e-6)
    np.testing.assert_array_equal(one_hot(ages, bins), tf_input.one_hot(tf.constant(ages), bins).numpy())


def test_records_are_indexed_and_parsed_without_tensorflow(real_records):
    offsets = record_offsets(real_records[0])
    assert len(offsets) == PHOTOS // 2
    with open(real_records[0], "rb") as file:
        file.seek(offsets[1][0])
        example = parse_example(file.read(offsets[1][1]))
    assert example["row"] == 2 and example["dataset"] == 0 and jpeg_side(example["image"]) == 256
    assert len(Examples.of(real_records)) == PHOTOS


def test_a_truncated_file_is_named(real_records, tmp_path):
    broken = tmp_path / "broken.tfrecord"
    broken.write_bytes(open(real_records[0], "rb").read()[:-100])
    with pytest.raises(ValueError, match="broken.tfrecord"):
        Examples.of([str(broken)])


def test_unshuffled_files_are_interleaved_as_tf_data_interleaves_them():
    lengths = [3, 0, 5, 1, 4, 2, 6, 1, 3, 7, 2]
    sequences = [[(i, j) for j in range(n)] for i, n in enumerate(lengths)]
    files = tf.data.Dataset.from_tensor_slices(tf.constant(lengths, tf.int64))
    expected = files.enumerate().interleave(
        lambda i, n: tf.data.Dataset.range(n).map(lambda j: (i, j)),
        cycle_length=8,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    assert interleaved(sequences, 8) == [(int(i), int(j)) for i, j in expected.as_numpy_iterator()]
